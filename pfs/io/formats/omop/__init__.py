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
goes to the quarantine (``conversion_quarantine.csv``); every other row proceeds.

Modules: ``source`` reads the tables, ``vocabulary`` the concept tables, ``dates`` the per-person
dates, ``medications`` and ``notes`` the native tables, ``convert`` puts them together.
"""

from pfs.io.formats.omop.convert import convert_omop

__all__ = ["convert_omop"]
