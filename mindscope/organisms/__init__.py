"""mindscope.organisms."""
