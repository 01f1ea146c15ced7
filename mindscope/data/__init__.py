"""mindscope.data."""
