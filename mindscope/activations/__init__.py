"""mindscope.activations."""
