"""density layer of ssddbc."""
