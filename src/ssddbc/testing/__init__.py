"""testing layer of ssddbc."""
