"""Errors and warnings raised by pfs.

A :class:`PfsError` is a user mistake (a malformed export, a bad config) and the CLI turns it
into one line and an exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PfsError(Exception):
    """Base class for errors the user can fix; ``exit_code`` is what the CLI returns."""

    exit_code = 2


class ExportError(PfsError):
    """The export directory cannot be read: missing table, missing column, unreadable file."""

    exit_code = 3


class SchemaError(ExportError):
    """A table does not match its Table Schema in a way that no quarantine can absorb."""


class ConfigError(PfsError):
    """The configuration or mapping file is invalid."""

    exit_code = 4


class RuleFileError(PfsError):
    """A shipped or user-supplied rule file is malformed."""

    exit_code = 4


class ModelFileError(ConfigError):
    """A trained model named in the config is missing a file, or has one pfs cannot read safely."""


class StrictModeError(PfsError):
    """``--strict`` was given and a row was quarantined."""

    exit_code = 5


class PfsWarning(UserWarning):
    """Something worth knowing that does not stop the run."""


class QuarantineWarning(PfsWarning):
    """Rows were set aside; the quarantine file says which and why."""
