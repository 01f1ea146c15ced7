"""The sections of the report, one module each.

Every module here calls :func:`mindscope.report.registry.register` once at import; the registry
imports them all (no list to keep). A module reads only results rows, draws through
:mod:`mindscope.report.plot` and imports no other section.
"""
