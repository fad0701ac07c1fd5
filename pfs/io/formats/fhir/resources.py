"""Small readers of FHIR resource fields that tolerate what real exports leave out."""

from __future__ import annotations

from typing import Any


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def get_path(obj: Any, *path: str | int) -> Any:
    """obj[path0][path1]...; None as soon as a step is missing or of the wrong type."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(obj, list) or len(obj) <= step:
                return None
            obj = obj[step]
        else:
            if not isinstance(obj, dict):
                return None
            obj = obj.get(step)
    return obj


def concept_text(cc: Any) -> str:
    """A CodeableConcept as the EHR wrote it: its text, else the first coding's display."""
    if not isinstance(cc, dict):
        return ""
    if cc.get("text"):
        return str(cc["text"]).strip()
    for coding in as_list(cc.get("coding")):
        if isinstance(coding, dict) and coding.get("display"):
            return str(coding["display"]).strip()
    return ""


def ref_id(reference: Any) -> str:
    """The id a reference points to: 'Patient/123', '.../Patient/123/_history/2', 'urn:uuid:123' -> '123'."""
    ref = get_path(reference, "reference") if isinstance(reference, dict) else reference
    if not ref:
        return ""
    ref = str(ref).strip()
    if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
        return ref.split(":", 2)[2]
    parts = [p for p in ref.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-1] if parts else ""


def code_of(cc: Any) -> str:
    return str(get_path(cc, "coding", 0, "code") or "").strip().lower()


def entered_in_error(res: dict[str, Any], status_field: str = "status") -> bool:
    value = res.get(status_field)
    code = value if isinstance(value, str) else code_of(value)
    return str(code).lower() == "entered-in-error"
