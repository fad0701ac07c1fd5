"""Comparison of every method with the manual annotations (``pfs compare``)."""
