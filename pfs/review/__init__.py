"""``pfs review``: a local web page where a clinician adjudicates each patient's progression date.

The run in OUT (what ``pfs extract`` wrote) is read once; review decisions live in one SQLite file
beside it (WAL mode, restart-safe) and leave as an annotations CSV ready for ``pfs compare``.
"""

from __future__ import annotations

from pfs.review.agreement import agreement
from pfs.review.decisions import export_annotations
from pfs.review.server import serve

__all__ = ["agreement", "export_annotations", "serve"]
