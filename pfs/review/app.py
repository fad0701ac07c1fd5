"""The review web application (Starlette): server-rendered pages, a JSON API, and the guards around them.

Guards: a token when the server listens beyond this machine; a CSRF token on every POST (pages carry
it in ``<meta name="csrf-token">``, the API takes it as ``X-CSRF-Token``); Jinja2 autoescaping for
every text; a Content-Security-Policy allowing only this server's own script and style; an access log
with the route pattern only (no patient id, query string or body); files served only from names
the run itself lists, never from a path in the request.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles

from pfs.review import db
from pfs.review.decisions import DecisionError, annotations_csv, check_reviewer, decide
from pfs.review.pages import FILTERS, SORTS, patient_list, patient_view
from pfs.review.run import Run
from pfs.review.timeline import timeline_svg

access_log = logging.getLogger("pfs.review.access")
TOKEN_COOKIE = "pfs_review_token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


@dataclass
class ReviewState:
    """What the application serves: one run, its review database, and the secrets of this server."""

    run: Run
    db_path: Path
    reviewer: str
    page_size: int = 100
    reference: pd.DataFrame | None = None
    token: str | None = None
    allowed_hosts: tuple[str, ...] | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


def _templates() -> Environment:
    return Environment(loader=PackageLoader("pfs.review", "templates"), autoescape=select_autoescape(default=True),
                       trim_blocks=True, lstrip_blocks=True)


def _list_params(request: Request, page_size: int) -> dict[str, Any]:
    """Sort, filter and paging from the query string, each checked against a closed list."""
    q = request.query_params
    sort = q.get("sort", "patient_id")
    filt = q.get("filter", "all")

    def number(name: str, default: int, hi: int) -> int:
        try:
            return min(max(int(q.get(name, default)), 0), hi)
        except ValueError:
            return default

    return {"sort": sort if sort in SORTS else "patient_id", "desc": q.get("desc") == "1",
            "filt": filt if filt in FILTERS else "all", "offset": number("offset", 0, 10**9),
            "limit": number("limit", page_size, 1000) or page_size, "query": q.get("q", "")[:64]}


def create_app(state: ReviewState) -> Starlette:
    """The application for one run; ``state`` holds everything it needs (no globals).

    Handlers are plain functions, which Starlette runs in its thread pool: SQLite and pandas work then
    never holds up the event loop while another reviewer's request waits.
    """
    env = _templates()

    def render(name: str, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(csrf=state.csrf, reviewer=state.reviewer, **ctx))

    def known(pid: str) -> str:
        if not state.run.has_patient(pid):
            raise _NotFound()
        return pid

    def view(pid: str, request: Request) -> dict[str, Any]:
        p = _list_params(request, state.page_size)
        order = patient_list(state.run, state.db_path, state.reviewer, p["sort"], p["desc"], p["filt"], 0, 0,
                             p["query"])["order"]
        return patient_view(state.run, state.db_path, known(pid), order, state.reference)

    def home(request: Request) -> Response:
        p = _list_params(request, state.page_size)
        page = patient_list(state.run, state.db_path, state.reviewer, p["sort"], p["desc"], p["filt"], p["offset"],
                            p["limit"], p["query"])
        keep = {"sort": p["sort"], "desc": "1" if p["desc"] else "", "filter": p["filt"], "q": p["query"]}
        return render("list.html", page=page, params=p, keep={k: v for k, v in keep.items() if v},
                      sorts=SORTS, filters=FILTERS)

    def patient_page(request: Request) -> Response:
        v = view(request.path_params["patient_id"], request)
        keep = {k: request.query_params[k] for k in ("sort", "desc", "filter", "q") if k in request.query_params}
        return render("patient.html", v=v, svg=timeline_svg(v), keep=keep)

    def mask_image(request: Request) -> Response:
        pid = known(request.path_params["patient_id"])
        studies = state.run.patient_rows("volumes", pid)
        study = request.path_params["study_id"]
        if "study_id" not in studies or study not in set(studies["study_id"]):
            raise _NotFound()
        root = state.run.masks_dir.resolve()
        path = (root / pid / f"{study}_qc.png").resolve()
        if root not in path.parents or not path.is_file():
            raise _NotFound()
        return FileResponse(path, media_type="image/png")

    def api_health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "patients": len(state.run.summary), "reviewer": state.reviewer})

    def api_patients(request: Request) -> Response:
        p = _list_params(request, state.page_size)
        reviewer = request.query_params.get("reviewer") or state.reviewer
        page = patient_list(state.run, state.db_path, check_reviewer(reviewer), p["sort"], p["desc"], p["filt"],
                            p["offset"], p["limit"], p["query"])
        page.pop("order")
        return JSONResponse(page)

    def api_patient(request: Request) -> Response:
        v = view(request.path_params["patient_id"], request)
        for rep in v["reports"]:
            rep["text"] = "".join(s for s, _ in rep.pop("segments"))
            rep["spans"] = _spans_json(rep["text"], state, v["patient_id"], rep["report_id"])
        v.pop("all_dates")
        return JSONResponse(v)

    async def api_review(request: Request) -> Response:
        if not secrets.compare_digest(request.headers.get("x-csrf-token", ""), state.csrf):
            return JSONResponse({"error": "missing or wrong X-CSRF-Token header (read it from a page's "
                                          "<meta name=\"csrf-token\">)"}, status_code=403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "send the decision as application/json"}, status_code=415)
        pid = known(request.path_params["patient_id"])
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "the body is not valid JSON"}, status_code=400)
        try:
            row = decide(state.run, pid, body, state.reviewer)
        except DecisionError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse(await run_in_threadpool(db.record, state.db_path, row))

    def api_export(request: Request) -> Response:
        who = request.query_params.get("reviewer")
        data = annotations_csv(state.db_path, check_reviewer(who) if who else None)
        return Response(data, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="annotations.csv"'})

    routes = [
        Route("/", home),
        Route("/patients/{patient_id}", patient_page),
        Route("/masks/{patient_id}/{study_id}.png", mask_image),
        Route("/api/health", api_health),
        Route("/api/patients", api_patients),
        Route("/api/patients/{patient_id}", api_patient),
        Route("/api/patients/{patient_id}/review", api_review, methods=["POST"]),
        Route("/api/export/annotations.csv", api_export),
        Mount("/static", StaticFiles(packages=[("pfs.review", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard, state=state)],
                    exception_handlers={_NotFound: _not_found, DecisionError: _bad_request})
    return app


def _spans_json(text: str, state: ReviewState, pid: str, rid: str) -> list[dict[str, Any]]:
    from pfs.review.evidence import label_spans

    labels = state.run.patient_rows("report_labels", pid)
    rows = labels[labels["report_id"] == rid].to_dict("records") if "report_id" in labels else []
    return [{"start": s, "end": e, "kind": k} for s, e, k in (label_spans(text, rows[0]) if rows else [])]


class _NotFound(Exception):
    pass


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "no such patient or file in this run"}, status_code=404)
    return HTMLResponse("<!doctype html><title>not found</title><p>Not found in this run.</p>", status_code=404)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


class _Guard(BaseHTTPMiddleware):
    """Host and token checks, security headers, and an access log without identifiers."""

    def __init__(self, app: Any, state: ReviewState) -> None:
        super().__init__(app)
        self.state = state

    def _route(self, request: Request) -> str:
        for route in request.app.routes:
            match, _ = route.matches(request.scope)
            if match == Match.FULL:
                return getattr(route, "path", "?") + ("/..." if isinstance(route, Mount) else "")
        return "(no route)"

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        route = self._route(request)  # before routing: a Mount rewrites the scope's paths
        response = await self._checked(request, call_next)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        access_log.info("%s %s %d %.0f ms", request.method, route, response.status_code,
                        1000 * (time.perf_counter() - started))
        return response

    async def _checked(self, request: Request, call_next: Any) -> Response:
        st = self.state
        host = request.headers.get("host", "").rsplit(":", 1)[0].strip("[]")
        if st.allowed_hosts is not None and host not in st.allowed_hosts:
            return Response("unknown host", status_code=421)
        if st.token:
            given = request.cookies.get(TOKEN_COOKIE) or request.headers.get("authorization", "").removeprefix(
                "Bearer ")
            if not secrets.compare_digest(given or "", st.token):
                offered = request.query_params.get("token", "")
                if request.method == "GET" and secrets.compare_digest(offered, st.token):
                    resp = RedirectResponse(request.url.path, status_code=303)
                    resp.set_cookie(TOKEN_COOKIE, st.token, httponly=True, samesite="strict")
                    return resp
                return Response("this server needs its access token: open the URL it printed", status_code=401)
        return await call_next(request)
