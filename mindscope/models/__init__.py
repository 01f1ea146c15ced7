"""mindscope.models."""
