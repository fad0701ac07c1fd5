"""Read a FHIR R4 export (bulk-export NDJSON, gzipped or not, and Bundle JSON) into the native layout.

Codes and code systems are in ``pfs/rules/fhir_mapping.json``. NDJSON files are streamed line by
line in two passes, so memory holds the kept rows, never the export:

1. Patient and Condition resources: every patient, and the GBM diagnosis (earliest onset).
2. Everything else, kept only for the patients that stay: Procedure (surgery, first radiotherapy
   course), Encounter (last follow-up), MedicationRequest / MedicationStatement /
   MedicationAdministration (+ Medication for medicationReference) -> medications, with
   dosageInstruction mapped to dose, dose_unit, frequency, route and its text kept as the sig;
   DiagnosticReport (presentedForm base64 text, else conclusion) and DocumentReference (base64
   attachments) of radiology -> reports; ImagingStudy series -> imaging through a series-uid ->
   file map (``imaging_map.csv``: series_uid,path).

Malformed lines, resources whose subject is not a Patient of the export, attachments that are
not text, and unmapped image series go to the quarantine (``conversion_quarantine.csv``) with the file name, the
line (or bundle entry) number and the resource id; everything else proceeds.

Modules: ``reader`` streams resources, ``rules`` and ``resources`` read codes and fields, one
module per native table (``medications``, ``reports``, ``imaging``), ``convert`` runs the passes.
"""

from pfs.io.formats.fhir.convert import convert_fhir
from pfs.io.formats.fhir.resources import ref_id

__all__ = ["convert_fhir", "ref_id"]
