"""Start the review server for one run: read it, prepare the database, print the URL, serve."""

from __future__ import annotations

import getpass
import logging
import re
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from pfs.exceptions import PfsError
from pfs.review import db
from pfs.review.decisions import check_reviewer
from pfs.review.run import load_run, review_settings
from pfs.review.texts import ensure_sources

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_reviewer() -> str:
    """The login name, which is how a reviewer is told apart when no --reviewer is given."""
    try:
        name = re.sub(r"[^A-Za-z0-9._@-]", "", getpass.getuser())
    except (KeyError, OSError):
        name = ""
    return name or "reviewer"


def _reference(path: Path | None) -> pd.DataFrame | None:
    if path is None:
        return None
    from pfs.evaluate.compare import load_annotations

    ann, _ = load_annotations(path, None)
    frame = ann.copy()
    for col in ("progression_date", "censor_date"):
        if col in frame:
            frame[col] = pd.to_datetime(frame[col], errors="coerce").dt.strftime("%Y-%m-%d")
    frame["progressed"] = frame["progressed"].astype("Int64").astype(str)
    return frame.set_index("patient_id")


def build_state(out: Path | str, db_path: Path | str | None = None, reviewer: str | None = None,
                annotations: Path | None = None, token: str | None = None,
                allowed_hosts: tuple[str, ...] | None = None, say: Callable[[str], Any] = lambda m: None):
    """Everything the application needs, ready: the run read, the database created, report texts copied."""
    from pfs.review.app import ReviewState

    settings = review_settings()
    run = load_run(out, settings)
    path = Path(db_path) if db_path else Path(out) / db.DEFAULT_DB_NAME
    db.init(path)
    say(ensure_sources(run, path))
    return ReviewState(run=run, db_path=path, reviewer=check_reviewer(reviewer or default_reviewer()),
                       page_size=settings["page_size"], reference=_reference(annotations), token=token,
                       allowed_hosts=allowed_hosts)


def _check_port(host: str, port: int) -> None:
    """A taken port is the user's to fix: say so in one line rather than through uvicorn's exit code."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise PfsError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port") from err


def serve(out: Path | str, host: str = "127.0.0.1", port: int = 8765, db_path: Path | str | None = None,
          reviewer: str | None = None, annotations: Path | None = None, token: str | None = None,
          say: Callable[[str], Any] = print) -> None:
    """Serve the run in OUT until interrupted. Any host other than this machine needs a token."""
    try:
        import uvicorn

        from pfs.review.app import create_app
    except ImportError as err:
        raise PfsError("pfs review needs the web extra: pip install 'pfs[review]'") from err
    _check_port(host, port)
    local = host in LOCAL_HOSTS
    if not local and not token:
        token = secrets.token_urlsafe(24)
    state = build_state(out, db_path, reviewer, annotations, token,
                        allowed_hosts=(*LOCAL_HOSTS,) if local else None, say=say)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    say(f"pfs review: {len(state.run.summary)} patients, reviewer {state.reviewer}, decisions in {state.db_path}")
    say(f"open {url}   (Ctrl+C to stop)")
    logging.getLogger("pfs.review.access").setLevel(logging.INFO)
    config = uvicorn.Config(create_app(state), host=host, port=port, access_log=False, log_level="warning",
                            server_header=False, date_header=False)
    uvicorn.Server(config).run()
