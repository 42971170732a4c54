"""grid_search layer of ssddbc."""
