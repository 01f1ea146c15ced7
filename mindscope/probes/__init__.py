"""mindscope.probes."""
