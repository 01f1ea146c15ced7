"""mindscope.report."""
