"""mindscope.lenses."""
