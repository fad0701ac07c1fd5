"""Shared constants of the review tests (a module of its own: `conftest` is a name several folders use)."""

EVIL = "<script>window.__pwned = 1;</script>"
