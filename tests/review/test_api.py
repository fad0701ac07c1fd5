"""The JSON API and the pages, through Starlette's test client, on a real (small) run."""

from __future__ import annotations

import io
import logging
import sqlite3

import pandas as pd
import pytest
from review_testdata import EVIL

from pfs.io.schema import load_schema


def _post(client, state, pid: str, body: dict, **headers):
    return client.post(f"/api/patients/{pid}/review", json=body, headers={"X-CSRF-Token": state.csrf, **headers})


def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "patients": 4, "reviewer": "alice"}


def test_list_pages_sorts_and_filters(client, state):
    page = client.get("/api/patients?limit=3").json()
    assert page["total"] == 4 and [p["patient_id"] for p in page["patients"]] == ["P0001", "P0002", "P0003"]
    rest = client.get("/api/patients?limit=3&offset=3").json()
    assert [p["patient_id"] for p in rest["patients"]] == ["P0004"]
    by_date = client.get("/api/patients?sort=reconciled_date&desc=1").json()["patients"]
    dates = [p["reconciled_date"] for p in by_date]
    assert dates == sorted(dates, reverse=True)
    assert {p["status"] for p in page["patients"]} == {"unreviewed"}
    assert _post(client, state, "P0002", {"decision": "accept"}).status_code == 200
    unreviewed = client.get("/api/patients?filter=unreviewed").json()
    assert unreviewed["total"] == 3 and "P0002" not in [p["patient_id"] for p in unreviewed["patients"]]
    mine = client.get("/api/patients?filter=mine").json()
    assert [p["patient_id"] for p in mine["patients"]] == ["P0002"] and mine["patients"][0]["status"] == "accepted"
    assert client.get("/api/patients?filter=mine&reviewer=bob").json()["total"] == 0
    # an unknown sort or filter falls back to the default instead of reaching pandas
    assert client.get("/api/patients?sort=__class__&filter=nope").json()["total"] == 4


def test_disagreement_filter_matches_the_source_calls(client, state):
    rows = client.get("/api/patients").json()["patients"]
    flagged = {p["patient_id"] for p in rows if p["disagree"]}
    split = {p["patient_id"] for p in rows if p["steroid"] != p["nlp"]}
    assert split <= flagged
    got = client.get("/api/patients?filter=disagree").json()
    assert {p["patient_id"] for p in got["patients"]} == flagged


def test_patient_detail_has_timeline_and_located_evidence(client):
    v = client.get("/api/patients/P0001").json()
    assert v["reconciled_progressed"] == "1" and v["reconciled_date"] == "2020-01-08"
    assert "pseudoprogression window" in v["deciding_rule"]
    assert {c["source"] for c in v["candidates"]} == {"steroid", "nlp"}
    assert any(c["status"] == "accepted" for c in v["candidates"])
    deciding = [r for r in v["reports"] if r["deciding"]]
    assert [r["report_id"] for r in deciding] == ["R000013"]
    for rep in v["reports"]:
        for span in rep["spans"]:
            if span["kind"] == "evidence":
                assert rep["text"][span["start"]: span["end"]] == rep["evidence_sentence"]
    assert any(r["spans"] for r in deciding)
    assert v["dose_steps"] and v["courses"] and v["orders"]
    assert [t[0] for t in v["treatments"]][:2] == ["Surgery", "Radiotherapy"]


def test_decisions_accept_pick_type_and_no_progression(client, state):
    r = _post(client, state, "P0001", {"decision": "accept", "comment": "clear"})
    assert r.json()["status"] == "accepted" and r.json()["progression_date"] == "2020-01-08"
    r = _post(client, state, "P0001", {"decision": "date", "progression_date": "2019-12-20", "chosen_source": "steroid"})
    assert r.json()["status"] == "changed" and r.json()["chosen_source"] == "steroid"
    assert '"progression_date": "2020-01-08"' in r.json()["previous"]
    r = _post(client, state, "P0003", {"decision": "no_progression", "censor_date": "2019-07-22"})
    assert r.json()["status"] == "accepted"  # the reconciled call was no progression too
    r = _post(client, state, "P0002", {"decision": "no_progression"})
    assert r.json()["status"] == "no progression" and r.json()["censor_date"] == "2021-03-21"
    log = client.get("/api/patients/P0001").json()["reviews"]
    assert len(log) == 1 and log[0]["progression_date"] == "2019-12-20"


@pytest.mark.parametrize("body, fragment", [
    ({"decision": "maybe"}, "decision must be one of"),
    ({"decision": "date", "progression_date": "08/01/2020"}, "YYYY-MM-DD"),
    ({"decision": "date", "progression_date": "2020-02-30"}, "YYYY-MM-DD"),
    ({"decision": "accept", "reviewer": "<b>x</b>"}, "reviewer must be"),
    ({"decision": "accept", "chosen_source": "oracle"}, "chosen_source"),
])
def test_bad_decisions_are_refused_with_a_reason(client, state, body, fragment):
    r = _post(client, state, "P0001", body)
    assert r.status_code == 422 and fragment in r.json()["error"]
    assert client.get("/api/patients/P0001").json()["reviews"] == []


def test_post_needs_the_csrf_token_and_json(client, state):
    assert client.post("/api/patients/P0001/review", json={"decision": "accept"}).status_code == 403
    bad = client.post("/api/patients/P0001/review", json={"decision": "accept"}, headers={"X-CSRF-Token": "x"})
    assert bad.status_code == 403
    form = client.post("/api/patients/P0001/review", data={"decision": "accept"}, headers={"X-CSRF-Token": state.csrf})
    assert form.status_code == 415
    page = client.get("/").text
    assert f'<meta name="csrf-token" content="{state.csrf}">' in page


def test_unknown_patient_and_paths_from_the_request_are_refused(client):
    assert client.get("/api/patients/NOPE").status_code == 404
    assert client.get("/patients/NOPE").status_code == 404
    assert client.get("/masks/P0001/..%2F..%2Fmanifest.png").status_code == 404
    assert client.get("/masks/P0001/P0001-S01.png").status_code == 404  # no volumes in this run
    assert client.get("/static/../review.toml").status_code == 404


def test_report_text_is_escaped_everywhere(client):
    html = client.get("/patients/P0001").text
    assert EVIL not in html
    assert "&lt;script&gt;window.__pwned = 1;&lt;/script&gt;" in html
    assert "script-src 'self'" in client.get("/patients/P0001").headers["content-security-policy"]


def test_export_is_in_the_annotations_schema_and_compare_reads_it(client, state, review_run, tmp_path):
    _post(client, state, "P0001", {"decision": "accept"})
    _post(client, state, "P0003", {"decision": "no_progression", "censor_date": "2019-07-01"})
    r = client.get("/api/export/annotations.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(r.text), dtype=str, keep_default_na=False)
    assert list(frame.columns) == [f.name for f in load_schema("annotations").fields]
    assert frame.to_dict("records") == [
        {"patient_id": "P0001", "progressed": "1", "progression_date": "2020-01-08", "censor_date": ""},
        {"patient_id": "P0003", "progressed": "0", "progression_date": "", "censor_date": "2019-07-01"},
    ]
    from pfs.evaluate.compare import compare
    from pfs.review import export_annotations

    target, log_path, n = export_annotations(review_run, tmp_path / "reviewed.csv", state.db_path)
    assert n == 2 and target.read_text(encoding="utf-8") == r.text
    assert len(pd.read_csv(log_path)) == 2
    table = compare(review_run, target)
    assert len(table)


def test_review_log_is_append_only(client, state):
    _post(client, state, "P0001", {"decision": "accept"})
    con = sqlite3.connect(state.db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE log SET reviewer='mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM log")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_access_log_has_route_patterns_not_patient_ids(client, caplog):
    with caplog.at_level(logging.INFO, logger="pfs.review.access"):
        client.get("/patients/P0002?filter=unreviewed")
        client.get("/api/patients/P0002")
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "pfs.review.access")
    assert "/patients/{patient_id}" in text and "/api/patients/{patient_id}" in text
    assert "P0002" not in text and "unreviewed" not in text


def test_token_and_host_guards(review_run, tmp_path):
    from starlette.testclient import TestClient

    from pfs.review.app import create_app
    from pfs.review.server import build_state

    st = build_state(review_run, db_path=tmp_path / "r.sqlite", reviewer="bob", token="s3cret",
                     allowed_hosts=("testserver",))
    with TestClient(create_app(st)) as c:
        assert c.get("/api/health").status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        first = c.get("/?token=s3cret", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert c.get("/api/health").status_code == 200  # the cookie now carries the token
        assert c.get("/api/health", headers={"Host": "evil.example"}).status_code == 421


def test_timeline_svg_shows_every_candidate_and_the_reconciled_date(client):
    v = client.get("/api/patients/P0001").json()
    html = client.get("/patients/P0001").text
    assert html.count('class="cand cand-') == len(v["candidates"])
    assert 'class="vl vl-reconciled"' in html and "reconciled progression: 2020-01-08" in html
    assert html.count('class="rec rec-') == len(v["reconciled_events"])


def test_qc_mask_images_are_served_by_study_id_only(review_run, tmp_path):
    import shutil

    from starlette.testclient import TestClient

    from pfs.review.app import create_app
    from pfs.review.server import build_state

    out = tmp_path / "out"
    shutil.copytree(review_run, out)
    pd.DataFrame({"patient_id": ["P0001"], "study_id": ["P0001-S01"], "study_date": ["2019-05-01"],
                  "et_volume_ml": ["2.5"], "rano_state": ["baseline"]}).to_csv(out / "volumes.csv", index=False)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 20
    (out / "masks" / "P0001").mkdir(parents=True)
    (out / "masks" / "P0001" / "P0001-S01_qc.png").write_bytes(png)
    (out / "masks" / "P0001" / "secret_qc.png").write_bytes(png)
    st = build_state(out, db_path=tmp_path / "r.sqlite", reviewer="alice")
    with TestClient(create_app(st)) as c:
        r = c.get("/masks/P0001/P0001-S01.png")
        assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"
        assert c.get("/masks/P0001/secret.png").status_code == 404  # a file there, but not a study of the run
        assert c.get("/masks/P0002/P0001-S01.png").status_code == 404
        page = c.get("/patients/P0001").text
        assert 'src="/masks/P0001/P0001-S01.png"' in page and "RANO baseline" in page


def test_reference_annotations_are_shown_beside_the_patient(review_run, tmp_path):
    from starlette.testclient import TestClient

    from pfs.review.app import create_app
    from pfs.review.server import build_state

    ann = pd.read_csv(review_run.parent / "synth" / "annotations.csv", dtype=str, keep_default_na=False)
    st = build_state(review_run, db_path=tmp_path / "r.sqlite", reviewer="alice",
                     annotations=review_run.parent / "synth" / "annotations.csv")
    with TestClient(create_app(st)) as c:
        for pid in ("P0002", "P0003"):
            row = ann[ann["patient_id"] == pid].iloc[0].drop("patient_id").to_dict()
            assert c.get(f"/api/patients/{pid}").json()["reference"] == row
        assert "Reference annotation:" in c.get("/patients/P0002").text
