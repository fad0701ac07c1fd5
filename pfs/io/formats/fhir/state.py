"""What the second pass collects per kept patient, shared by the per-resource mappers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pfs.io.formats.fhir.reader import Where
from pfs.io.formats.fhir.rules import FhirRules
from pfs.io.quarantine import Quarantine


@dataclass
class State:
    rules: FhirRules
    quarantine: Quarantine
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    diagnosis: dict[str, str] = field(default_factory=dict)
    diagnosis_where: dict[str, tuple[Where, str]] = field(default_factory=dict)
    first_record: dict[str, str] = field(default_factory=dict)
    procedures: list[dict[str, str]] = field(default_factory=list)  # resection/RT rows for first-line dates
    procedure_rows: list[dict[str, Any]] = field(default_factory=list)  # the native procedures table
    followup: dict[str, str] = field(default_factory=dict)
    meds: list[dict[str, Any]] = field(default_factory=list)
    med_names: dict[str, str] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    pending_missing: list[tuple[Where, str, str, str]] = field(default_factory=list)

    def bump(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def seen(self, pid: str, date: str) -> None:
        if date and (pid not in self.first_record or date < self.first_record[pid]):
            self.first_record[pid] = date
