"""Small hand-written native exports shared by several test modules."""

from __future__ import annotations

from pathlib import Path

PATIENTS = """patient_id,diagnosis_date,surgery_date,rt_start_date,rt_end_date,last_followup_date,death_date
P1,2020-01-01,2020-01-10,2020-02-10,2020-03-20,2021-01-01,
P2,2020-02-01,2020-02-05,2020-03-05,2020-04-15,,2020-12-01
P3,2020-03-01,,,,2020-09-01,
"""

MEDICATIONS = """patient_id,medication_id,order_date,end_date,drug_name,dose,dose_unit,frequency,route,sig
P1,M1,2020-01-01,2020-01-20,dexamethasone,4,mg,BID,PO,4 mg PO BID
P1,M2,2020-08-01,,dexamethasone,4,mg,BID,PO,4 mg PO BID
P2,M3,2020-02-01,2020-02-10,levetiracetam,500,mg,BID,PO,
"""

REPORTS = """patient_id,report_id,report_date,procedure,text
P1,R1,2020-05-01,MRI BRAIN,"FINDINGS: Stable.
IMPRESSION: No change."
P2,R2,2020-06-01,MRI BRAIN,Increased enhancement consistent with progression.
"""


def write_export(root: Path, **tables: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (root / f"{name}.csv").write_text(text, encoding="utf-8")
    return root
