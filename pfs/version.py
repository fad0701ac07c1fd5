"""The pfs version: one place, read by the package metadata (pyproject), the manifest and the cache key."""

__version__ = "0.1.0"
