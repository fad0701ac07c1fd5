"""Review state in one SQLite file beside the run (standard library, WAL mode).

Two kinds of tables: the reviewers' work (``reviews``: one current decision per patient and
reviewer; ``log``: every decision ever made, append-only, enforced by triggers), and a copy of the
export's report texts and medication orders indexed by patient, so that a patient page never
scans the export.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import PfsError

DEFAULT_DB_NAME = "review.sqlite"
LOG_COLUMNS = ["time", "reviewer", "patient_id", "decision", "progressed", "progression_date", "censor_date",
               "previous", "chosen_source", "comment"]
REPORT_COLUMNS = ["patient_id", "report_id", "report_date", "procedure", "text"]
ORDER_COLUMNS = ["patient_id", "medication_id", "order_date", "end_date", "drug_name", "dose", "dose_unit",
                 "frequency", "route", "sig"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    patient_id TEXT NOT NULL, reviewer TEXT NOT NULL, decision TEXT NOT NULL, progressed INTEGER NOT NULL,
    progression_date TEXT, censor_date TEXT, chosen_source TEXT, comment TEXT, status TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (patient_id, reviewer));
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, reviewer TEXT NOT NULL, patient_id TEXT NOT NULL,
    decision TEXT NOT NULL, progressed INTEGER, progression_date TEXT, censor_date TEXT, previous TEXT,
    chosen_source TEXT, comment TEXT);
CREATE TRIGGER IF NOT EXISTS log_no_update BEFORE UPDATE ON log
    BEGIN SELECT RAISE(ABORT, 'review log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS log_no_delete BEFORE DELETE ON log
    BEGIN SELECT RAISE(ABORT, 'review log is append-only'); END;
CREATE TABLE IF NOT EXISTS source_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS reports (patient_id TEXT, report_id TEXT, report_date TEXT, procedure TEXT, text TEXT);
CREATE INDEX IF NOT EXISTS reports_patient ON reports (patient_id);
CREATE TABLE IF NOT EXISTS orders (patient_id TEXT, medication_id TEXT, order_date TEXT, end_date TEXT,
    drug_name TEXT, dose TEXT, dose_unit TEXT, frequency TEXT, route TEXT, sig TEXT);
CREATE INDEX IF NOT EXISTS orders_patient ON orders (patient_id);
CREATE TABLE IF NOT EXISTS patients (patient_id TEXT PRIMARY KEY, data TEXT);
"""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection (one per request): SQLite opens in microseconds and WAL lets readers run
    beside one writer, so several reviewers' servers can share the file."""
    try:
        con = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.Error as err:
        raise PfsError(f"{path}: cannot open the review database ({err})") from err
    con.row_factory = sqlite3.Row
    try:
        yield con
    finally:
        con.close()


def init(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(_SCHEMA)


def _frame(rows: list[sqlite3.Row], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def reviews(path: Path, patient_id: str | None = None) -> pd.DataFrame:
    """Current decisions (all patients, or one), one row per patient and reviewer."""
    cols = ["patient_id", "reviewer", "decision", "progressed", "progression_date", "censor_date",
            "chosen_source", "comment", "status", "updated_at"]
    with connect(path) as con:
        if patient_id is None:
            rows = con.execute(f"SELECT {','.join(cols)} FROM reviews ORDER BY patient_id, reviewer").fetchall()
        else:
            rows = con.execute(f"SELECT {','.join(cols)} FROM reviews WHERE patient_id=? ORDER BY reviewer",
                               (patient_id,)).fetchall()
    return _frame(rows, cols)


def log(path: Path) -> pd.DataFrame:
    with connect(path) as con:
        rows = con.execute(f"SELECT {','.join(LOG_COLUMNS)} FROM log ORDER BY id").fetchall()
    return _frame(rows, LOG_COLUMNS)


def record(path: Path, decision: dict[str, Any]) -> dict[str, Any]:
    """Store one decision as the reviewer's current one and append it to the log, in one transaction."""
    with connect(path) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            prev = con.execute("SELECT decision, progressed, progression_date, censor_date FROM reviews "
                               "WHERE patient_id=? AND reviewer=?",
                               (decision["patient_id"], decision["reviewer"])).fetchone()
            previous = "" if prev is None else json.dumps(dict(prev), sort_keys=True)
            stamp = now()
            con.execute(
                "INSERT OR REPLACE INTO reviews VALUES (?,?,?,?,?,?,?,?,?,?)",
                (decision["patient_id"], decision["reviewer"], decision["decision"], decision["progressed"],
                 decision["progression_date"], decision["censor_date"], decision["chosen_source"],
                 decision["comment"], decision["status"], stamp))
            con.execute(
                f"INSERT INTO log ({','.join(LOG_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (stamp, decision["reviewer"], decision["patient_id"], decision["decision"], decision["progressed"],
                 decision["progression_date"], decision["censor_date"], previous, decision["chosen_source"],
                 decision["comment"]))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return {**decision, "updated_at": stamp, "previous": previous}


def status_by_patient(path: Path, reviewer: str | None) -> tuple[dict[str, str], set[str]]:
    """Each patient's review status (the given reviewer's, else the latest of anyone) and who `reviewer` did."""
    with connect(path) as con:
        rows = con.execute("SELECT patient_id, reviewer, status FROM reviews ORDER BY updated_at").fetchall()
    status: dict[str, str] = {}
    mine: set[str] = set()
    for pid, who, st in rows:
        if reviewer is None or who == reviewer:
            status[pid] = st
            if who == reviewer:
                mine.add(pid)
        else:
            status.setdefault(pid, st)
    return status, mine


def source_rows(path: Path, table: str, patient_id: str) -> pd.DataFrame:
    cols = REPORT_COLUMNS if table == "reports" else ORDER_COLUMNS
    order = "report_date, report_id" if table == "reports" else "order_date, medication_id"
    with connect(path) as con:
        rows = con.execute(f"SELECT {','.join(cols)} FROM {table} WHERE patient_id=? ORDER BY {order}",
                           (patient_id,)).fetchall()
    return _frame(rows, cols)


def patient_dates(path: Path, patient_id: str) -> dict[str, str]:
    """The export's patients row (diagnosis, surgery, RT ...) as text, or {} when not copied."""
    with connect(path) as con:
        row = con.execute("SELECT data FROM patients WHERE patient_id=?", (patient_id,)).fetchone()
    return {} if row is None else json.loads(row[0])


def source_key(path: Path) -> str | None:
    with connect(path) as con:
        row = con.execute("SELECT value FROM source_meta WHERE key='inputs'").fetchone()
    return None if row is None else row[0]


def replace_sources(path: Path, key: str, batches: Iterator[tuple[str, pd.DataFrame]]) -> dict[str, int]:
    """Copy report texts and medication orders into the database, replacing an older copy."""
    counts = {"patients": 0, "reports": 0, "orders": 0}
    with connect(path) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("DELETE FROM reports")
            con.execute("DELETE FROM orders")
            con.execute("DELETE FROM patients")
            for table, frame in batches:
                if table == "patients":
                    con.executemany("INSERT OR REPLACE INTO patients VALUES (?, ?)",
                                    ((r["patient_id"], json.dumps(r)) for r in frame.to_dict("records")))
                    counts["patients"] += len(frame)
                    continue
                cols = REPORT_COLUMNS if table == "reports" else ORDER_COLUMNS
                frame = frame.reindex(columns=cols).astype(object).where(frame.reindex(columns=cols).notna(), "")
                con.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(cols))})",
                                frame.itertuples(index=False, name=None))
                counts[table] += len(frame)
            con.execute("INSERT OR REPLACE INTO source_meta VALUES ('inputs', ?)", (key,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return counts
