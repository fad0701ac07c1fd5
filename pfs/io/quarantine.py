"""The quarantine: every input row that pfs does not use, with the reason.

Rows are identified by table and 1-based data-row number so a user can find them in the file.
Report text is never copied here: only short field values are, truncated.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

COLUMNS = ["table", "row", "patient_id", "column", "value", "reason", "stage"]
MAX_VALUE_CHARS = 200
#: Columns whose content is never copied into the quarantine (free text may identify a patient).
REDACTED_COLUMNS = frozenset({"text", "sig"})


def _short(value: object, column: str | None) -> str:
    if column in REDACTED_COLUMNS:
        return "<redacted>"
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


class Quarantine:
    """Collects quarantine rows from every stage; cheap to append to in bulk."""

    def __init__(self) -> None:
        self._frames: list[pd.DataFrame] = []
        self._pending: list[dict[str, object]] = []

    def add_one(
        self,
        table: str,
        row: int,
        reason: str,
        *,
        stage: str,
        column: str = "",
        value: object = "",
        patient_id: object = "",
    ) -> None:
        """Quarantine one row; cheap when a reader finds bad rows one at a time (no frame per row)."""
        self._pending.append(
            {
                "table": table,
                "row": int(row),
                "patient_id": "" if patient_id is None or pd.isna(patient_id) else str(patient_id),
                "column": column or "",
                "value": _short(value, column),
                "reason": reason,
                "stage": stage,
            }
        )

    def _flush(self) -> None:
        """Turn single rows into a frame, keeping the order rows were added in."""
        if self._pending:
            self._frames.append(pd.DataFrame(self._pending, columns=COLUMNS))
            self._pending = []

    def add(
        self,
        table: str,
        rows: Iterable[int],
        reason: str | Iterable[str],
        *,
        stage: str,
        column: str | None = None,
        values: Iterable[object] | None = None,
        patient_ids: Iterable[object] | None = None,
    ) -> None:
        rows = list(rows)
        if not rows:
            return
        self._flush()
        n = len(rows)
        reasons = [reason] * n if isinstance(reason, str) else list(reason)
        vals = [""] * n if values is None else [_short(v, column) for v in values]
        pids = [""] * n if patient_ids is None else ["" if pd.isna(p) else str(p) for p in patient_ids]
        self._frames.append(
            pd.DataFrame(
                {
                    "table": table,
                    "row": [int(r) for r in rows],
                    "patient_id": pids,
                    "column": column or "",
                    "value": vals,
                    "reason": reasons,
                    "stage": stage,
                }
            )
        )

    def add_frame(self, frame: pd.DataFrame) -> None:
        """Append rows already shaped like the quarantine table (e.g. from an extractor)."""
        if frame is None or frame.empty:
            return
        missing = set(COLUMNS) - set(frame.columns)
        if missing:
            raise ValueError(f"quarantine frame lacks columns {sorted(missing)}")
        self._flush()
        self._frames.append(frame[COLUMNS].copy())

    def add_from(self, table: str, frame: pd.DataFrame, mask: pd.Series, reason: str | pd.Series, *,
                 stage: str, column: str | None = None) -> None:
        """Quarantine the rows of ``frame`` selected by ``mask``; ``frame`` must carry ``_row``."""
        sel = frame.loc[mask]
        if sel.empty:
            return
        reasons = reason if isinstance(reason, str) else reason.loc[mask].astype(str).tolist()
        self.add(
            table,
            sel["_row"].tolist(),
            reasons,
            stage=stage,
            column=column,
            values=sel[column].tolist() if column and column in sel else None,
            patient_ids=sel["patient_id"].tolist() if "patient_id" in sel else None,
        )

    def extend(self, other: Quarantine) -> None:
        """Take over every row of ``other``."""
        self._flush()
        other._flush()
        self._frames.extend(other._frames)

    def frame(self) -> pd.DataFrame:
        self._flush()
        if not self._frames:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "object") for c in COLUMNS})
        out = pd.concat(self._frames, ignore_index=True)
        out["row"] = out["row"].astype("int64")
        return out.sort_values(["table", "row", "stage", "column"], kind="stable").reset_index(drop=True)

    def rows_of(self, table: str) -> set[int]:
        """Row numbers of ``table`` quarantined so far (a row with several reasons counts once)."""
        self._flush()
        rows: set[int] = set()
        for f in self._frames:
            rows.update(f.loc[f["table"] == table, "row"].tolist())
        return rows

    def __len__(self) -> int:
        return sum(len(f) for f in self._frames) + len(self._pending)
