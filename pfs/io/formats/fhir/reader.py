"""Streaming FHIR resources out of NDJSON (gzipped or not) and Bundle JSON files, in two passes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pfs.exceptions import ExportError
from pfs.io.formats.common import set_aside
from pfs.io.formats.fhir.resources import as_list, get_path
from pfs.io.limits import open_text_gzip_limited
from pfs.io.quarantine import Quarantine

#: A Bundle is one JSON document and must be parsed whole; larger ones should come as NDJSON.
MAX_BUNDLE_BYTES = 1024**3


_FIRST_PASS = re.compile(r'"resourceType"\s*:\s*"(?:Patient|Condition)"')


@dataclass
class Where:
    file: str
    row: int


def files_of(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise ExportError(f"{src}: FHIR export not found (a directory of .ndjson/.json files or one file)")
    files = [
        p
        for p in sorted(src.rglob("*"))
        if p.is_file()
        and not p.name.startswith(".")
        and "__MACOSX" not in p.parts
        and p.name.lower().endswith((".ndjson", ".ndjson.gz", ".json", ".json.gz", ".jsonl"))
    ]
    if not files:
        raise ExportError(f"{src}: no FHIR files (.ndjson, .ndjson.gz, .json) found")
    return files


def _open_text(path: Path) -> Any:
    if path.name.lower().endswith(".gz"):
        return open_text_gzip_limited(path, encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by the caller


def _is_ndjson(path: Path) -> bool:
    """NDJSON by name, or a .json file whose first line is a complete resource (bulk exports vary)."""
    low = path.name.lower()
    if low.endswith((".ndjson", ".ndjson.gz", ".jsonl")):
        return True
    with _open_text(path) as fh:
        first = fh.readline()
        second = fh.readline()
    if not second.strip():
        return False
    try:
        json.loads(first)
    except json.JSONDecodeError:
        return False
    return True


def iter_resources(
    path: Path, quarantine: Quarantine, first_pass: bool
) -> Iterator[tuple[Where, dict[str, Any]]]:
    """Yield (where, resource) from one file; pass 1 yields Patient/Condition, pass 2 everything else.

    Each NDJSON line is parsed in exactly one pass (decided by a cheap text test), so a malformed
    line is quarantined once.
    """
    label = path.name
    try:
        if _is_ndjson(path):
            with _open_text(path) as fh:
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    if bool(_FIRST_PASS.search(line)) != first_pass:
                        continue
                    try:
                        res = json.loads(line)
                    except json.JSONDecodeError as err:
                        set_aside(quarantine, label, n, f"malformed NDJSON line: {err.msg} at column {err.colno}")
                        continue
                    yield from _expand(res, Where(label, n), quarantine, first_pass)
            return
        if path.stat().st_size > MAX_BUNDLE_BYTES:
            raise ExportError(
                f"{path}: a {path.stat().st_size}-byte Bundle is over the {MAX_BUNDLE_BYTES}-byte "
                "limit; export it as NDJSON (one resource per line) instead"
            )
        with _open_text(path) as fh:
            try:
                doc = json.load(fh)
            except json.JSONDecodeError as err:
                if first_pass:
                    set_aside(quarantine, label, err.lineno, f"malformed JSON: {err.msg} at column {err.colno}")
                return
        yield from _expand(doc, Where(label, 1), quarantine, first_pass)
    except (OSError, EOFError, UnicodeError) as err:
        raise ExportError(f"{path}: cannot read: {err}") from err


def _expand(
    res: Any, where: Where, quarantine: Quarantine, first_pass: bool
) -> Iterator[tuple[Where, dict[str, Any]]]:
    if not isinstance(res, dict) or "resourceType" not in res:
        if first_pass:
            set_aside(quarantine, where.file, where.row, "not a FHIR resource (no resourceType)")
        return
    if res["resourceType"] == "Bundle":
        for i, entry in enumerate(as_list(res.get("entry")), start=1):
            inner = get_path(entry, "resource")
            row = i if where.row == 1 and not _is_line_based(where) else where.row
            if isinstance(inner, dict):
                yield from _expand(inner, Where(where.file, row), quarantine, first_pass)
        return
    is_first = res["resourceType"] in ("Patient", "Condition")
    if is_first == first_pass:
        yield where, res


def _is_line_based(where: Where) -> bool:
    return where.file.lower().endswith((".ndjson", ".ndjson.gz", ".jsonl"))
