"""ssddbc layer of ssddbc."""
