"""Agreement between reviewers and the `pfs review` command's non-serving modes."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from pfs.cli import app
from pfs.review import db
from pfs.review.agreement import agreement, cohen_kappa
from pfs.review.decisions import decide


def test_cohen_kappa_hand_computed():
    # 10 patients: both progressed 4, both not 3, a-only 2, b-only 1 -> po 0.7, pe 0.6*0.5+0.4*0.5 = 0.5
    a = [1] * 4 + [0] * 3 + [1] * 2 + [0]
    b = [1] * 4 + [0] * 3 + [0] * 2 + [1]
    assert cohen_kappa(a, b) == pytest.approx((0.7 - 0.5) / 0.5)
    assert cohen_kappa([1, 0], [1, 0]) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))  # chance agreement is total: kappa undefined


def _review(state, pid, reviewer, body):
    db.record(state.db_path, decide(state.run, pid, {**body, "reviewer": reviewer}, None))


def test_two_reviewers_agreement_and_patients_to_adjudicate(state, review_run):
    _review(state, "P0001", "alice", {"decision": "accept"})
    _review(state, "P0001", "bob", {"decision": "date", "progression_date": "2020-02-01"})  # 24 days apart
    _review(state, "P0002", "alice", {"decision": "accept"})
    _review(state, "P0002", "bob", {"decision": "date", "progression_date": "2020-06-09"})  # 91 days apart
    _review(state, "P0003", "alice", {"decision": "accept"})
    _review(state, "P0003", "bob", {"decision": "date", "progression_date": "2019-07-01"})  # status differs
    _review(state, "P0004", "alice", {"decision": "accept"})  # bob did not review P0004
    (pair,) = agreement(review_run, state.db_path, days=30)
    assert pair.reviewers == ("alice", "bob") and pair.patients == 3 and pair.status_agree == 2
    assert pair.both_progressed == 2 and pair.dates_within == 1
    assert [pid for pid, _ in pair.to_adjudicate] == ["P0002", "P0003"]
    assert pair.kappa == pytest.approx(cohen_kappa([1, 1, 0], [1, 1, 1]))

    runner = CliRunner()
    res = runner.invoke(app, ["review", str(review_run), "--db", str(state.db_path), "--agreement"])
    assert res.exit_code == 0, res.output
    assert "alice vs bob: 3 patients" in res.output and "P0002: progression dates 91 days apart" in res.output


def test_cli_export_writes_annotations_and_the_audit_log(state, review_run, tmp_path):
    _review(state, "P0001", "alice", {"decision": "accept"})
    _review(state, "P0001", "alice", {"decision": "no_progression", "censor_date": "2020-01-20"})
    _review(state, "P0002", "bob", {"decision": "accept"})
    target = tmp_path / "ann" / "reviewed.csv"
    res = CliRunner().invoke(app, ["review", str(review_run), "--db", str(state.db_path), "--export", str(target),
                                   "--reviewer", "alice"])
    assert res.exit_code == 0, res.output
    ann = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert ann.to_dict("records") == [
        {"patient_id": "P0001", "progressed": "0", "progression_date": "", "censor_date": "2020-01-20"}]
    log = pd.read_csv(target.parent / "review_log.csv", dtype=str, keep_default_na=False)
    assert list(log["decision"]) == ["accept", "no_progression", "accept"]
    assert log.loc[1, "previous"] and "2020-01-08" in log.loc[1, "previous"]
    assert list(log.columns) == db.LOG_COLUMNS


def test_cli_refuses_what_it_cannot_do(review_run, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["review", str(review_run), "--db", str(tmp_path / "none.sqlite"), "--agreement"])
    assert res.exit_code != 0 and "no review database" in str(res.exception)
    res = runner.invoke(app, ["review", str(tmp_path), "--export", str(tmp_path / "a.csv")])
    assert res.exit_code != 0


def test_cli_review_on_a_taken_port_is_a_one_line_error(review_run, tmp_path):
    import socket

    from pfs.exceptions import PfsError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = CliRunner().invoke(app, ["review", str(review_run), "--db", str(tmp_path / "r.sqlite"),
                                       "--port", str(port)])
    assert isinstance(res.exception, PfsError) and f"127.0.0.1:{port}" in str(res.exception)
    assert not (tmp_path / "r.sqlite").exists()  # refused before touching anything
