"""Loading and validating an export, quarantine accounting, manifests and safe output writing."""

from pfs.io.export import Export, load_export
from pfs.io.quarantine import Quarantine

__all__ = ["Export", "Quarantine", "load_export"]
