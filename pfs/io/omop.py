"""Read an OMOP CDM 5.3/5.4 export (a directory or a .zip of CSV/Parquet tables) into the native layout.

Every clinical rule (which concepts are a GBM diagnosis, a resection, radiotherapy, a radiology
note) is in ``pfs/rules/omop_mapping.json``. Tables are read in chunks and filtered to the persons
that matter, so a whole-hospital export, vocabulary included, never sits in memory at once:

1. PERSON (required) gives every person; CONCEPT (+ CONCEPT_ANCESTOR) turns the code lists into
   concept ids of this export's vocabulary.
2. CONDITION_OCCURRENCE selects the GBM patients and dates the diagnosis; persons without one are
   skipped and counted (``require_gbm=False`` keeps everyone, for whole-hospital samples).
3. PROCEDURE_OCCURRENCE gives surgery and the first radiotherapy course; OBSERVATION_PERIOD and
   VISIT_OCCURRENCE the last follow-up; DEATH the death date.
4. DRUG_EXPOSURE becomes medications (drug name from the concept, else the source value;
   quantity/dose_unit_source_value as dose; sig kept for the steroid extractor's parser).
5. NOTE rows that are radiology reports become reports; IMAGE_OCCURRENCE (imaging extension) images.

A bad row (unparseable date, unknown person, unknown concept with no source value, empty note)
goes to ``conversion_quarantine.csv``; every other row proceeds.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pandas as pd

from pfs.exceptions import ExportError, RuleFileError
from pfs.io.convert import (
    CodeSet,
    ConversionLog,
    ConvertResult,
    iso_dates,
    load_rule_file,
    number_text,
    parse_code_set,
    place_file,
    safe_relative,
    treatment_dates,
    write_native,
)

RULE_FILE = "omop_mapping.json"
_RULE_KEYS = {
    "description",
    "sources",
    "gbm_diagnosis",
    "resection",
    "radiotherapy",
    "radiology_notes",
    "route_concepts",
    "corticosteroid_ingredients",
    "ingredient_relationships",
    "resection_window_days_before_diagnosis",
    "radiotherapy_course_gap_days",
}
#: Uncompressed bytes pfs will read out of one zip archive (a guard against zip bombs).
DEFAULT_MAX_UNZIPPED_BYTES = 8 * 1024**3
CHUNK_ROWS = 200_000
_EXTENSIONS = (".csv.gz", ".csv", ".tsv", ".txt", ".parquet")
OPTIONAL_TABLES = (
    "observation_period",
    "visit_occurrence",
    "condition_occurrence",
    "procedure_occurrence",
    "drug_exposure",
    "note",
    "death",
    "concept",
    "concept_ancestor",
    "concept_relationship",
    "drug_strength",
    "image_occurrence",
)
#: Columns of IMAGE_OCCURRENCE that may hold the MR sequence (the extension has no standard one).
_SEQUENCE_COLUMNS = ("image_series_description", "series_description", "sequence")
_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


@dataclass(frozen=True)
class OmopRules:
    """The compiled ``omop_mapping.json``."""

    gbm: CodeSet
    resection: CodeSet
    radiotherapy: CodeSet
    radiology: CodeSet
    routes: dict[str, str]
    ingredients: dict[str, str]
    ingredient_relationships: frozenset[str]
    resection_window_days: int
    rt_gap_days: int


def load_rules() -> OmopRules:
    """Read and validate the shipped OMOP mapping."""
    data = load_rule_file(RULE_FILE, _RULE_KEYS)
    for key in ("resection_window_days_before_diagnosis", "radiotherapy_course_gap_days"):
        if not isinstance(data.get(key), int) or data[key] < 0:
            raise RuleFileError(
                f"rules/{RULE_FILE}: {key} must be a non-negative integer, not {data.get(key)!r}"
            )
    return OmopRules(
        gbm=parse_code_set(data["gbm_diagnosis"], "gbm_diagnosis", RULE_FILE),
        resection=parse_code_set(data["resection"], "resection", RULE_FILE),
        radiotherapy=parse_code_set(data["radiotherapy"], "radiotherapy", RULE_FILE),
        radiology=parse_code_set(data["radiology_notes"], "radiology_notes", RULE_FILE),
        routes={str(k): str(v) for k, v in data["route_concepts"].items()},
        ingredients={str(k): str(v) for k, v in data["corticosteroid_ingredients"].items()},
        ingredient_relationships=frozenset(data["ingredient_relationships"]),
        resection_window_days=data["resection_window_days_before_diagnosis"],
        rt_gap_days=data["radiotherapy_course_gap_days"],
    )


# ---------------------------------------------------------------------------------------------
# Reading tables from a directory or a zip


class _CountingReader(io.RawIOBase):
    """Wraps a zip member and stops once more than ``budget`` bytes came out (declared sizes can lie)."""

    def __init__(self, raw: IO[bytes], budget: list[int], name: str) -> None:
        self._raw = raw
        self._budget = budget
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        self._budget[0] -= n
        if self._budget[0] < 0:
            raise ExportError(
                f"{self._name}: the zip holds more data than pfs reads from one archive "
                f"(limit {DEFAULT_MAX_UNZIPPED_BYTES} bytes unless raised); unzip it yourself "
                "if it is genuine"
            )
        b[:n] = data
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class OmopSource:
    """The tables of an OMOP export, found by case-insensitive name in a directory or a zip file."""

    def __init__(self, path: Path, max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._budget = [int(max_unzipped_bytes)]
        self.files: dict[str, str] = {}
        if self.path.is_file() and zipfile.is_zipfile(self.path):
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise ExportError(f"{self.path}: cannot open zip file: {err}") from err
            names = [i.filename for i in self._zip.infolist() if not i.is_dir()]
            declared = sum(i.file_size for i in self._zip.infolist())
            if declared > max_unzipped_bytes:
                raise ExportError(
                    f"{self.path}: the zip declares {declared} uncompressed bytes, over the "
                    f"{max_unzipped_bytes}-byte limit; unzip it and convert the directory"
                )
        elif self.path.is_dir():
            names = [p.relative_to(self.path).as_posix() for p in sorted(self.path.rglob("*")) if p.is_file()]
        else:
            raise ExportError(f"{self.path}: not a directory or a zip file of OMOP tables")
        for name in names:
            pure = PurePosixPath(name)
            if "__MACOSX" in pure.parts or pure.name.startswith("."):
                continue
            low = pure.name.lower()
            ext = next((e for e in _EXTENSIONS if low.endswith(e)), None)
            if ext is None:
                continue
            table = low[: -len(ext)]
            if table in self.files and self.files[table] != name:
                raise ExportError(
                    f"{self.path}: table '{table}' exists as {self.files[table]} and {name}; keep one"
                )
            self.files[table] = name

    def has(self, table: str) -> bool:
        return table in self.files

    def label(self, table: str) -> str:
        return PurePosixPath(self.files[table]).name

    def _open(self, table: str) -> IO[bytes]:
        name = self.files[table]
        try:
            if self._zip is not None:
                raw = self._zip.open(name)
                stream: IO[bytes] = io.BufferedReader(
                    _CountingReader(raw, self._budget, f"{self.path}:{name}")
                )
            else:
                stream = open(self.path / name, "rb")  # noqa: SIM115 - closed by the caller
        except (OSError, zipfile.BadZipFile, RuntimeError) as err:
            raise ExportError(f"{self.path}: cannot read {name}: {err}") from err
        if name.lower().endswith(".gz"):
            import gzip

            stream = gzip.open(stream)  # type: ignore[assignment]
        return stream

    def columns(self, table: str) -> list[str]:
        """Lower-cased column names of ``table``."""
        if self.files[table].lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            with self._open(table) as fh:
                return [c.lower() for c in pq.ParquetFile(io.BytesIO(fh.read())).schema_arrow.names]
        header, _ = self._header(table)
        return header

    def _header(self, table: str) -> tuple[list[str], str]:
        with self._open(table) as fh:
            first = fh.readline(1 << 20).decode("utf-8-sig", errors="replace").rstrip("\r\n")
        if not first.strip():
            raise ExportError(f"{self.path}: {self.files[table]} is empty (no header row)")
        delim = max((",", "\t", "|", ";"), key=first.count)
        header = next(csv.reader([first], delimiter=delim))
        return [h.strip().strip('"').lower() for h in header], delim

    def chunks(
        self,
        table: str,
        usecols: list[str] | None = None,
        log: ConversionLog | None = None,
        chunksize: int = CHUNK_ROWS,
    ) -> Iterator[pd.DataFrame]:
        """Yield ``table`` in chunks: lower-case columns, strings ('' for blank), 1-based ``_row``.

        Columns of ``usecols`` that the file lacks come back blank (optional CDM columns are often
        left out); malformed CSV lines are quarantined when a ``log`` is given.
        """
        name = self.files[table]
        if name.lower().endswith(".parquet"):
            yield from self._parquet_chunks(table, usecols, chunksize)
            return
        header, delim = self._header(table)
        wanted = set(usecols) if usecols else None
        start = 0
        with self._open(table) as fh, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
            try:
                reader = pd.read_csv(
                    text,
                    sep=delim,
                    dtype=str,
                    keep_default_na=False,
                    na_filter=False,
                    chunksize=chunksize,
                    usecols=(lambda c: c.strip().strip('"').lower() in wanted) if wanted else None,
                    quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL,
                    on_bad_lines="warn",
                    engine="c",
                )
                for chunk in reader:
                    chunk.columns = [str(c).strip().strip('"').lower() for c in chunk.columns]
                    chunk["_row"] = range(start + 1, start + len(chunk) + 1)
                    start += len(chunk)
                    yield _with_columns(chunk, usecols)
            except pd.errors.EmptyDataError:
                return
            except (pd.errors.ParserError, UnicodeError, OSError, zipfile.BadZipFile) as err:
                raise ExportError(f"{self.path}: cannot parse {name}: {err}") from err
            if log is not None:
                for w in caught:
                    for m in _BAD_LINE.finditer(str(w.message)):
                        log.add(self.label(table), int(m.group(1)) - 1, f"malformed CSV line: {m.group(2)}")

    def _parquet_chunks(
        self, table: str, usecols: list[str] | None, chunksize: int
    ) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        name = self.files[table]
        try:
            if self._zip is not None:
                with self._open(table) as fh:
                    pf = pq.ParquetFile(io.BytesIO(fh.read()))
            else:
                pf = pq.ParquetFile(self.path / name)
            actual = {c.lower(): c for c in pf.schema_arrow.names}
            cols = [actual[c] for c in usecols if c in actual] if usecols else None
            start = 0
            for batch in pf.iter_batches(batch_size=chunksize, columns=cols):
                chunk = batch.to_pandas()
                chunk.columns = [str(c).lower() for c in chunk.columns]
                for c in chunk.columns:
                    s = chunk[c]
                    if pd.api.types.is_datetime64_any_dtype(s):
                        chunk[c] = s.dt.strftime("%Y-%m-%d").fillna("")
                    else:
                        chunk[c] = s.map(
                            lambda v: (
                                ""
                                if v is None or (isinstance(v, float) and pd.isna(v))
                                else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                            )
                        )
                chunk["_row"] = range(start + 1, start + len(chunk) + 1)
                start += len(chunk)
                yield _with_columns(chunk, usecols)
        except ExportError:
            raise
        except Exception as err:  # pyarrow raises many types for corrupt files
            raise ExportError(f"{self.path}: cannot read Parquet table {name}: {err}") from err

    def read(
        self,
        table: str,
        usecols: list[str] | None = None,
        log: ConversionLog | None = None,
        keep: Callable[[pd.DataFrame], pd.Series] | None = None,
    ) -> pd.DataFrame:
        """The whole (filtered) table: ``keep(chunk)`` selects the rows worth holding."""
        parts = []
        for chunk in self.chunks(table, usecols, log):
            parts.append(chunk.loc[keep(chunk)] if keep is not None else chunk)
        if not parts:
            return _with_columns(pd.DataFrame({"_row": pd.Series(dtype="int64")}), usecols)
        return pd.concat(parts, ignore_index=True)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _with_columns(frame: pd.DataFrame, usecols: list[str] | None) -> pd.DataFrame:
    for c in usecols or []:
        if c not in frame:
            frame[c] = ""
    for c in frame.columns:
        if c != "_row" and frame[c].dtype != object:
            frame[c] = frame[c].astype(str)
    return frame


def _ids(values: pd.Series) -> pd.Series:
    """Concept/person ids as canonical strings ('19073183.0' and ' 19073183' -> '19073183')."""
    s = values.fillna("").astype(str).str.strip()
    return s.str.replace(r"\.0+$", "", regex=True)


# ---------------------------------------------------------------------------------------------
# Vocabulary


class Vocabulary:
    """What pfs needs from CONCEPT / CONCEPT_ANCESTOR / CONCEPT_RELATIONSHIP, read in filtered chunks."""

    def __init__(self, source: OmopSource, rules: OmopRules, log: ConversionLog) -> None:
        self.source = source
        self.rules = rules
        self.log = log
        self.present = source.has("concept")
        self.sets: dict[str, set[str]] = {k: set() for k in ("gbm", "resection", "radiotherapy", "radiology")}
        self.routes: dict[str, str] = dict(rules.routes)
        if self.present:
            self._select()
        for key, cs in self._code_sets().items():
            self.sets[key] |= set(cs.concept_ids)
        if source.has("concept_ancestor"):
            self._descendants()

    def _code_sets(self) -> dict[str, CodeSet]:
        r = self.rules
        return {
            "gbm": r.gbm,
            "resection": r.resection,
            "radiotherapy": r.radiotherapy,
            "radiology": r.radiology,
        }

    def _select(self) -> None:
        cols = ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_code"]
        for chunk in self.source.chunks("concept", cols, self.log):
            chunk["concept_id"] = _ids(chunk["concept_id"])
            for key, cs in self._code_sets().items():
                self.sets[key].update(chunk.loc[cs.concept_mask(chunk), "concept_id"])
            route = chunk["domain_id"].str.strip().str.lower() == "route"
            self.routes.update(
                zip(chunk.loc[route, "concept_id"], chunk.loc[route, "concept_name"], strict=True)
            )

    def _descendants(self) -> None:
        wanted = set().union(*self.sets.values())
        if not wanted:
            return
        for chunk in self.source.chunks("concept_ancestor", ["ancestor_concept_id", "descendant_concept_id"]):
            anc, desc = _ids(chunk["ancestor_concept_id"]), _ids(chunk["descendant_concept_id"])
            hit = anc.isin(wanted)
            if not hit.any():
                continue
            for ids in self.sets.values():
                sel = hit & anc.isin(ids)
                ids.update(desc[sel])

    def lookup(self, ids: set[str]) -> pd.DataFrame:
        """concept_id -> concept_name, concept_class_id, vocabulary_id for ``ids`` (one filtered pass)."""
        cols = ["concept_id", "concept_name", "concept_class_id", "vocabulary_id"]
        if not self.present or not ids:
            return pd.DataFrame(columns=cols).set_index("concept_id")
        frame = self.source.read("concept", cols, keep=lambda c: _ids(c["concept_id"]).isin(ids))
        frame["concept_id"] = _ids(frame["concept_id"])
        return frame.drop_duplicates("concept_id").set_index("concept_id")[cols[1:]]

    def ingredients(self, drug_ids: set[str]) -> dict[str, list[str]]:
        """drug concept id -> ingredient names, through CONCEPT_ANCESTOR, else CONCEPT_RELATIONSHIP."""
        pairs: list[tuple[str, str]] = []
        if self.source.has("concept_ancestor"):
            for chunk in self.source.chunks(
                "concept_ancestor", ["ancestor_concept_id", "descendant_concept_id"]
            ):
                desc = _ids(chunk["descendant_concept_id"])
                sel = desc.isin(drug_ids)
                pairs += list(zip(desc[sel], _ids(chunk.loc[sel, "ancestor_concept_id"]), strict=True))
        if not pairs and self.source.has("concept_relationship"):
            for chunk in self.source.chunks(
                "concept_relationship", ["concept_id_1", "concept_id_2", "relationship_id"]
            ):
                c1 = _ids(chunk["concept_id_1"])
                sel = c1.isin(drug_ids) & chunk["relationship_id"].str.strip().isin(
                    self.rules.ingredient_relationships
                )
                pairs += list(zip(c1[sel], _ids(chunk.loc[sel, "concept_id_2"]), strict=True))
        out: dict[str, list[str]] = {}
        if pairs:
            info = self.lookup({a for _, a in pairs})
            for drug, anc in pairs:
                if (
                    anc in info.index
                    and str(info.at[anc, "concept_class_id"]).strip().lower() == "ingredient"
                ):
                    name = str(info.at[anc, "concept_name"]).strip()
                    if name and name not in out.setdefault(drug, []):
                        out[drug].append(name)
        for drug in drug_ids:
            if drug in self.rules.ingredients and drug not in out:
                out[drug] = [self.rules.ingredients[drug]]
        return out


# ---------------------------------------------------------------------------------------------
# Conversion


def _person_filter(log: ConversionLog, label: str, known: set[str]) -> Callable[[pd.DataFrame], pd.Series]:
    """Chunk filter: quarantine rows of unknown persons, keep rows of known ones."""

    def keep(chunk: pd.DataFrame) -> pd.Series:
        chunk["person_id"] = _ids(chunk["person_id"])
        unknown = ~chunk["person_id"].isin(known)
        log.add_frame(label, chunk.loc[unknown], "person_id not in the person table", column="person_id")
        return ~unknown

    return keep


def _dated(
    frame: pd.DataFrame, column: str, log: ConversionLog, label: str, *, required: bool
) -> pd.DataFrame:
    """Normalise ``column`` to ISO dates; quarantine unparseable ones (and blank ones when required)."""
    raw = frame[column].fillna("").astype(str).str.strip()
    frame[column] = iso_dates(raw)
    bad = (raw != "") & (frame[column] == "")
    if required:
        bad |= raw == ""
    log.add_frame(
        label,
        frame.loc[bad].assign(**{column: raw[bad]}),
        f"unparseable or missing date in {column}",
        column=column,
    )
    return frame.loc[~bad] if required else frame


def convert_omop(
    src: Path,
    out: Path,
    *,
    require_gbm: bool = True,
    patient_id: str = "person_id",
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
) -> ConvertResult:
    """Convert the OMOP export at ``src`` (directory or .zip) into the native layout at ``out``.

    Args:
        src: a directory or a zip file holding the CDM tables (CSV, CSV.gz or Parquet; any case).
        out: the native export directory to write.
        require_gbm: skip (and count) persons without a GBM diagnosis; False keeps everyone, with
            the diagnosis date falling back to the start of observation (or the first record).
        patient_id: 'person_id' (default) or 'person_source_value' (the source system's pseudonym;
            may be an MRN in some exports, so it is not the default).
        max_unzipped_bytes: refuse a zip that inflates past this (zip-bomb guard).
    """
    if patient_id not in ("person_id", "person_source_value"):
        raise ExportError(f"patient_id must be 'person_id' or 'person_source_value', not {patient_id!r}")
    rules = load_rules()
    source = OmopSource(Path(src), max_unzipped_bytes)
    try:
        return _convert(source, Path(out), rules, require_gbm=require_gbm, id_column=patient_id)
    finally:
        source.close()


def _convert(
    source: OmopSource, out: Path, rules: OmopRules, *, require_gbm: bool, id_column: str
) -> ConvertResult:
    log = ConversionLog()
    counts: dict[str, Any] = {
        "format": "omop",
        "source": str(source.path),
        "require_gbm": require_gbm,
        "tables_found": sorted(source.files),
        "tables_missing": [t for t in OPTIONAL_TABLES if not source.has(t)],
    }
    if not source.has("person"):
        raise ExportError(
            f"{source.path}: required OMOP table 'person' not found (person.csv or person.parquet)"
        )
    persons = source.read("person", ["person_id", "person_source_value"], log)
    persons["person_id"] = _ids(persons["person_id"])
    blank = persons["person_id"] == ""
    log.add_frame(source.label("person"), persons.loc[blank], "missing person_id", column="person_id")
    dup = ~blank & persons["person_id"].duplicated()
    log.add_frame(source.label("person"), persons.loc[dup], "duplicate person_id", column="person_id")
    persons = persons.loc[~blank & ~dup].reset_index(drop=True)
    known = set(persons["person_id"])
    counts["persons_seen"] = len(known)

    vocab = Vocabulary(source, rules, log)
    counts["vocabulary"] = "present" if vocab.present else "absent (source values only)"

    # GBM diagnosis
    dx: dict[str, str] = {}
    if source.has("condition_occurrence"):
        label = source.label("condition_occurrence")
        cols = [
            "person_id",
            "condition_concept_id",
            "condition_source_concept_id",
            "condition_source_value",
            "condition_start_date",
            "condition_start_datetime",
        ]
        gbm_ids = vocab.sets["gbm"]

        def is_gbm(chunk: pd.DataFrame) -> pd.Series:
            hit = (
                _ids(chunk["condition_concept_id"]).isin(gbm_ids)
                | _ids(chunk["condition_source_concept_id"]).isin(gbm_ids)
                | rules.gbm.source_mask(chunk["condition_source_value"])
            )
            return hit & _person_filter(log, label, known)(chunk)

        cond = source.read("condition_occurrence", cols, log, keep=is_gbm)
        cond["condition_start_date"] = cond["condition_start_date"].where(
            cond["condition_start_date"].str.strip() != "", cond["condition_start_datetime"]
        )
        cond = _dated(cond, "condition_start_date", log, label, required=True)
        dx = cond.groupby("person_id")["condition_start_date"].min().to_dict()
    counts["gbm_patients"] = len(dx)
    counts["skipped_no_gbm"] = len(known) - len(dx) if require_gbm else 0
    keep_ids = set(dx) if require_gbm else known
    keep = persons.loc[persons["person_id"].isin(keep_ids)].copy()

    # Procedures
    procs = pd.DataFrame(columns=["person_id", "kind", "date", "end"])
    if source.has("procedure_occurrence"):
        label = source.label("procedure_occurrence")
        cols = [
            "person_id",
            "procedure_concept_id",
            "procedure_source_concept_id",
            "procedure_source_value",
            "procedure_date",
            "procedure_datetime",
            "procedure_end_date",
        ]
        pfilter = _person_filter(log, label, known)
        frame = source.read(
            "procedure_occurrence", cols, log, keep=lambda c: pfilter(c) & c["person_id"].isin(keep_ids)
        )
        cid, sid = _ids(frame["procedure_concept_id"]), _ids(frame["procedure_source_concept_id"])
        kinds = pd.Series("", index=frame.index)
        for kind, cs in (("radiotherapy", rules.radiotherapy), ("resection", rules.resection)):
            hit = (
                cid.isin(vocab.sets[kind])
                | sid.isin(vocab.sets[kind])
                | cs.source_mask(frame["procedure_source_value"])
            )
            kinds = kinds.mask(hit & (kinds == ""), kind)
        frame = frame.assign(kind=kinds).loc[kinds != ""]
        frame["procedure_date"] = frame["procedure_date"].where(
            frame["procedure_date"].str.strip() != "", frame["procedure_datetime"]
        )
        frame = _dated(frame, "procedure_date", log, label, required=True)
        frame = _dated(frame, "procedure_end_date", log, label, required=False)
        procs = frame.rename(columns={"procedure_date": "date", "procedure_end_date": "end"})[
            ["person_id", "kind", "date", "end"]
        ]

    death: dict[str, str] = {}
    if source.has("death"):
        label = source.label("death")
        frame = source.read(
            "death",
            ["person_id", "death_date", "death_datetime"],
            log,
            keep=_person_filter(log, label, known),
        )
        frame["death_date"] = frame["death_date"].where(
            frame["death_date"].str.strip() != "", frame["death_datetime"]
        )
        frame = _dated(frame, "death_date", log, label, required=True)
        death = frame.groupby("person_id")["death_date"].min().to_dict()

    follow: dict[str, str] = {}
    obs_start: dict[str, str] = {}
    if source.has("observation_period"):
        label = source.label("observation_period")
        frame = source.read(
            "observation_period",
            ["person_id", "observation_period_start_date", "observation_period_end_date"],
            log,
            keep=_person_filter(log, label, known),
        )
        frame = _dated(frame, "observation_period_start_date", log, label, required=False)
        frame = _dated(frame, "observation_period_end_date", log, label, required=False)
        follow = (
            frame.loc[frame["observation_period_end_date"] != ""]
            .groupby("person_id")["observation_period_end_date"]
            .max()
            .to_dict()
        )
        obs_start = (
            frame.loc[frame["observation_period_start_date"] != ""]
            .groupby("person_id")["observation_period_start_date"]
            .min()
            .to_dict()
        )
    if source.has("visit_occurrence"):
        label = source.label("visit_occurrence")
        pfilter = _person_filter(log, label, known)
        frame = source.read(
            "visit_occurrence",
            ["person_id", "visit_start_date", "visit_end_date"],
            log,
            keep=lambda c: pfilter(c) & c["person_id"].isin(keep_ids),
        )
        frame = _dated(frame, "visit_start_date", log, label, required=False)
        frame = _dated(frame, "visit_end_date", log, label, required=False)
        last = frame[["visit_start_date", "visit_end_date"]].max(axis=1)
        frame = frame.assign(last=last).loc[last != ""]
        for pid, d in frame.groupby("person_id")["last"].max().items():
            follow[pid] = max(d, follow.get(pid, ""))

    meds = _medications(source, rules, vocab, log, known, keep_ids, counts)
    reports = _reports(source, vocab, rules, log, known, keep_ids, counts)
    imaging = _imaging(source, out, log, known, keep_ids, counts)

    # Patients
    rows = []
    first_record = _first_records([(meds, "order_date"), (reports, "report_date"), (imaging, "study_date")])
    fallback = 0
    for pid, source_value, row in zip(
        keep["person_id"], keep["person_source_value"], keep["_row"], strict=True
    ):
        diagnosis = dx.get(pid) or obs_start.get(pid) or first_record.get(pid, "")
        if pid not in dx:
            fallback += 1
        if not diagnosis:
            log.add(
                source.label("person"),
                row,
                "no GBM diagnosis date and no dated record to stand in",
                patient_id=pid,
            )
            continue
        p = procs.loc[procs["person_id"] == pid] if not procs.empty else procs
        surgery, rt_start, rt_end = treatment_dates(
            p, diagnosis, rules.resection_window_days, rules.rt_gap_days
        )
        rows.append(
            {
                "patient_id": (str(source_value).strip() or pid)
                if id_column == "person_source_value"
                else pid,
                "person_id": pid,
                "diagnosis_date": diagnosis,
                "surgery_date": surgery,
                "rt_start_date": rt_start,
                "rt_end_date": rt_end,
                "last_followup_date": follow.get(pid, ""),
                "death_date": death.get(pid, ""),
            }
        )
    counts["diagnosis_date_fallback"] = fallback
    patients = pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "person_id",
            "diagnosis_date",
            "surgery_date",
            "rt_start_date",
            "rt_end_date",
            "last_followup_date",
            "death_date",
        ],
    )
    dup = patients["patient_id"].duplicated(keep=False)
    if dup.any() and id_column == "person_source_value":
        raise ExportError(
            f"{source.path}: person_source_value is not unique "
            f"(e.g. {patients.loc[dup, 'patient_id'].iloc[0]!r}); convert with patient_id='person_id'"
        )
    to_patient = dict(zip(patients["person_id"], patients["patient_id"], strict=True))
    tables = {"patients": patients.drop(columns="person_id")}
    for name, frame in (("medications", meds), ("reports", reports), ("imaging", imaging)):
        frame = frame.loc[frame["person_id"].isin(to_patient)].copy()
        frame["patient_id"] = frame["person_id"].map(to_patient)
        tables[name] = frame.drop(columns="person_id")
    counts["patients"] = len(patients)
    return write_native(out, tables, log, counts)


def _first_records(frames: list[tuple[pd.DataFrame, str]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for frame, col in frames:
        if frame.empty:
            continue
        dated = frame.loc[frame[col] != ""]
        for pid, d in dated.groupby("person_id")[col].min().items():
            first[pid] = min(d, first.get(pid, d))
    return first


def _medications(
    source: OmopSource,
    rules: OmopRules,
    vocab: Vocabulary,
    log: ConversionLog,
    known: set[str],
    keep_ids: set[str],
    counts: dict[str, Any],
) -> pd.DataFrame:
    cols = [
        "drug_exposure_id",
        "person_id",
        "drug_concept_id",
        "drug_exposure_start_date",
        "drug_exposure_start_datetime",
        "drug_exposure_end_date",
        "verbatim_end_date",
        "quantity",
        "days_supply",
        "sig",
        "route_concept_id",
        "route_source_value",
        "drug_source_value",
        "dose_unit_source_value",
    ]
    out_cols = [
        "person_id",
        "medication_id",
        "order_date",
        "end_date",
        "drug_name",
        "dose",
        "dose_unit",
        "frequency",
        "route",
        "sig",
    ]
    if not source.has("drug_exposure"):
        return pd.DataFrame(columns=out_cols)
    label = source.label("drug_exposure")
    pfilter = _person_filter(log, label, known)
    d = source.read("drug_exposure", cols, log, keep=lambda c: pfilter(c) & c["person_id"].isin(keep_ids))
    counts["drug_exposure_rows_kept_persons"] = int(len(d))
    d["drug_exposure_start_date"] = d["drug_exposure_start_date"].where(
        d["drug_exposure_start_date"].str.strip() != "", d["drug_exposure_start_datetime"]
    )
    d = _dated(d, "drug_exposure_start_date", log, label, required=True)
    d = _dated(d, "drug_exposure_end_date", log, label, required=False)
    d = _dated(d, "verbatim_end_date", log, label, required=False)
    bad_id = d["drug_exposure_id"].str.strip() == ""
    log.add_frame(label, d.loc[bad_id], "missing drug_exposure_id", column="drug_exposure_id")
    d = d.loc[~bad_id]

    drug_ids = set(_ids(d["drug_concept_id"])) - {"", "0"}
    route_ids = set(_ids(d["route_concept_id"])) - {"", "0"}
    info = vocab.lookup(drug_ids | route_ids)
    names = info["concept_name"].to_dict() if not info.empty else {}
    ingredients = vocab.ingredients(drug_ids) if drug_ids else {}
    cid = _ids(d["drug_concept_id"])
    concept_name = cid.map(names).fillna("")
    source_value = d["drug_source_value"].str.strip()
    drug_name = concept_name.where(concept_name != "", source_value)
    unknown = (cid != "") & (cid != "0") & (concept_name == "")
    counts["drug_concepts_not_in_vocabulary"] = int(cid[unknown].nunique()) if vocab.present else 0
    no_name = drug_name == ""
    for r, pid, c in zip(d.loc[no_name, "_row"], d.loc[no_name, "person_id"], cid[no_name], strict=True):
        why = (
            f"unknown drug_concept_id {c} and no drug_source_value"
            if c not in ("", "0")
            else "no drug_concept_id and no drug_source_value"
        )
        log.add(label, r, why, patient_id=pid, column="drug_concept_id", value=c)
    ing = cid.map(lambda c: ingredients.get(c, []))
    with_ing = [
        n if not i or any(x.lower() in n.lower() for x in i) else f"{' / '.join(i)} ({n})"
        for n, i in zip(drug_name, ing, strict=True)
    ]
    drug_name = pd.Series(with_ing, index=d.index)
    counts["drug_names_from_concept"] = int(((concept_name != "") & ~no_name).sum())
    counts["drug_names_from_source_value"] = int(((concept_name == "") & ~no_name).sum())

    # End date: the source's own (verbatim) end when the ETL fills it, else the CDM end date.
    uses_verbatim = bool((d["verbatim_end_date"] != "").any())
    end = d["verbatim_end_date"] if uses_verbatim else d["drug_exposure_end_date"]
    # Dose: quantity is the dose when a dose unit is given or no days' supply says it is a dispensed count.
    qty = d["quantity"].map(number_text)
    unit = d["dose_unit_source_value"].str.strip()
    supply = pd.to_numeric(d["days_supply"], errors="coerce")
    qty_is_dose = (qty != "") & (qty != "0") & ((unit != "") | supply.isna() | (supply == 0))
    dose = qty.where(qty_is_dose, "")
    route = d["route_source_value"].str.strip()
    rid = _ids(d["route_concept_id"])
    route_name = rid.map(lambda r: names.get(r) or vocab.routes.get(r, "")).fillna("")
    route = route.where(route != "", route_name)
    meds = pd.DataFrame(
        {
            "person_id": d["person_id"],
            "medication_id": d["drug_exposure_id"].str.strip(),
            "order_date": d["drug_exposure_start_date"],
            "end_date": end,
            "drug_name": drug_name,
            "dose": dose,
            "dose_unit": unit,
            "frequency": "",
            "route": route,
            "sig": d["sig"],
            "_row": d["_row"],
        }
    ).loc[~no_name]
    dup = meds["medication_id"].duplicated()
    log.add_frame(
        label, meds.loc[dup], "duplicate drug_exposure_id", column="medication_id", patient_column="person_id"
    )
    return meds.loc[~dup, out_cols].reset_index(drop=True)


def _reports(
    source: OmopSource,
    vocab: Vocabulary,
    rules: OmopRules,
    log: ConversionLog,
    known: set[str],
    keep_ids: set[str],
    counts: dict[str, Any],
) -> pd.DataFrame:
    out_cols = ["person_id", "report_id", "report_date", "procedure", "text"]
    if not source.has("note"):
        return pd.DataFrame(columns=out_cols)
    label = source.label("note")
    cols = [
        "note_id",
        "person_id",
        "note_date",
        "note_datetime",
        "note_type_concept_id",
        "note_class_concept_id",
        "note_title",
        "note_text",
        "note_source_value",
    ]
    rad = vocab.sets["radiology"]
    pfilter = _person_filter(log, label, known)

    def keep(chunk: pd.DataFrame) -> pd.Series:
        is_rad = (
            _ids(chunk["note_type_concept_id"]).isin(rad)
            | _ids(chunk["note_class_concept_id"]).isin(rad)
            | rules.radiology.title_mask(chunk["note_title"])
            | rules.radiology.source_mask(chunk["note_source_value"])
        )
        return pfilter(chunk) & chunk["person_id"].isin(keep_ids) & is_rad

    n = source.read("note", cols, log, keep=keep)
    counts["radiology_notes_kept_persons"] = int(len(n))
    n["note_date"] = n["note_date"].where(n["note_date"].str.strip() != "", n["note_datetime"])
    n = _dated(n, "note_date", log, label, required=True)
    empty = n["note_text"].str.strip() == ""
    log.add_frame(label, n.loc[empty], "radiology note with empty note_text", column="note_id")
    n = n.loc[~empty]
    missing_id = n["note_id"].str.strip() == ""
    log.add_frame(label, n.loc[missing_id], "missing note_id", column="note_id")
    n = n.loc[~missing_id]
    return pd.DataFrame(
        {
            "person_id": n["person_id"],
            "report_id": n["note_id"].str.strip(),
            "report_date": n["note_date"],
            "procedure": n["note_title"].str.strip(),
            "text": n["note_text"],
        }
    )[out_cols].reset_index(drop=True)


def _imaging(
    source: OmopSource,
    out: Path,
    log: ConversionLog,
    known: set[str],
    keep_ids: set[str],
    counts: dict[str, Any],
) -> pd.DataFrame:
    out_cols = ["person_id", "study_id", "study_date", "sequence", "path", "mask_path"]
    if not source.has("image_occurrence"):
        return pd.DataFrame(columns=out_cols)
    label = source.label("image_occurrence")
    cols = [
        "image_occurrence_id",
        "person_id",
        "image_occurrence_date",
        "image_study_uid",
        "image_series_uid",
        "local_path",
        *_SEQUENCE_COLUMNS,
    ]
    pfilter = _person_filter(log, label, known)
    im = source.read("image_occurrence", cols, log, keep=lambda c: pfilter(c) & c["person_id"].isin(keep_ids))
    im = _dated(im, "image_occurrence_date", log, label, required=True)
    seq = pd.Series("", index=im.index)
    for c in _SEQUENCE_COLUMNS:
        seq = seq.where(seq != "", im[c].str.strip())
    seq = seq.where(seq != "", im["local_path"].map(_sequence_from_path))
    base = source.path if source.path.is_dir() else source.path.parent
    rows = []
    for idx, r in im.iterrows():
        rel = safe_relative(r["local_path"]) if r["local_path"].strip() else None
        if rel is None:
            log.add(
                label,
                r["_row"],
                "local_path blank, absolute or escaping the export directory",
                patient_id=r["person_id"],
                column="local_path",
                value=r["local_path"],
            )
            continue
        file = base / rel
        if not file.exists():
            log.add(
                label,
                r["_row"],
                "image file not found",
                patient_id=r["person_id"],
                column="local_path",
                value=rel,
            )
            continue
        place_file(file, out / rel)
        rows.append(
            {
                "person_id": r["person_id"],
                "study_id": r["image_study_uid"].strip() or r["image_occurrence_id"].strip(),
                "study_date": r["image_occurrence_date"],
                "sequence": seq[idx],
                "path": rel,
                "mask_path": "",
            }
        )
    counts["images_placed"] = len(rows)
    return pd.DataFrame(rows, columns=out_cols)


@cache
def _sequence_synonyms() -> dict[str, str]:
    data = json.loads(resources.files("pfs.rules").joinpath("sequences.json").read_text(encoding="utf-8"))
    return {
        "".join(ch for ch in s.upper() if ch.isalnum()): canon
        for canon, syns in data["sequences"].items()
        for s in [canon, *syns]
    }


def _sequence_from_path(path: str) -> str:
    """The MR sequence named in a file name ('.../P01_T1C.nii.gz' -> 'T1C'); '' when none is."""
    synonyms = _sequence_synonyms()
    name = PurePosixPath(str(path)).name.upper()
    for token in sorted(re.split(r"[^A-Z0-9]+", name), key=len, reverse=True):
        if token in synonyms:
            return synonyms[token]
    return ""
