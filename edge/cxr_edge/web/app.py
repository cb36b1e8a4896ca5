"""The web screen as a Starlette application: pages rendered by Jinja2 with autoescaping (every DICOM header value
is text, never markup), every asset served by the box itself, every page and API but /healthz behind a login.

Sessions are random cookies whose hash the database keeps (HttpOnly, SameSite=Strict, Secure under TLS); every
form carries the session's CSRF token, the login form a cookie-bound one. URLs hold internal ids only, never a
patient identifier or UID; no log line or error page shows patient data."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cxr_edge import DISCLAIMER
from cxr_edge.labels import LABELS, in_words
from cxr_edge.reasons import from_json
from cxr_edge.node.config import NodeConfig
from cxr_edge.node.state import State
from cxr_edge.reports import triage
from cxr_edge.web import accounts, pictures, reviews, words, worklist

HERE = Path(__file__).parent
SESSION_COOKIE = "cxr_session"
MAX_FORM_FIELDS = 40  # a review has a finding per image: a study of a few dozen images at most
LOGIN_COOKIE = "cxr_login"
HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
           "X-Frame-Options": "DENY",
           "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@dataclass
class Context:
    """What the pages need from the running node."""

    config: NodeConfig
    state: State
    log: Callable[[str], None]
    status: Callable[[], dict]  # the node's live status (cxr_edge.node.serve)
    classifier_factory: Callable[[], object]  # a Classifier for heatmaps on request (its own interpreters)
    bundle_warnings: list[str] = field(default_factory=list)  # cxr_edge.node.serve.bundle_warnings, on every page
    _classifier: object = None
    _heat_lock: threading.Lock = field(default_factory=threading.Lock)

    def heat_classifier(self):
        if self._classifier is None:
            self._classifier = self.classifier_factory()
        return self._classifier


class NeedLogin(Exception):
    pass


def create_app(context: Context) -> Starlette:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.globals.update(notice=DISCLAIMER, in_words=in_words, labels=LABELS, when=_when, reason_words=_reason_words,
                       person=words.person_name, age_sex=words.age_sex, result_of=words.result_of,
                       study_headline=words.study_headline,
                       headline=triage.headline, band_of=triage.band, band_words=triage.BAND_WORDS,
                       band_advice=triage.BAND_ADVICE,
                       finding_words=reviews.FINDING_WORDS, filters=worklist.FILTER_NAMES)
    secure = context.config.web.tls

    def page(request: Request, name: str, code: int = 200, **values) -> HTMLResponse:
        user = getattr(request.state, "user", None)
        html = env.get_template(name).render(request=request, user=user, csrf=getattr(request.state, "csrf", ""),
                                             warnings=[*context.bundle_warnings, *web_warnings(context.config)],
                                             **values)
        return HTMLResponse(html, status_code=code)

    def signed_in(request: Request, api: bool = False) -> accounts.User:
        session = request.cookies.get(SESSION_COOKIE, "")
        found = accounts.session_user(context.state, session) if session else None
        if found is None and api:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            user = accounts.user_for_token(context.state, token) if scheme.lower() == "bearer" and token else None
            if user is None:
                raise HTTPException(401, "log in, or send Authorization: Bearer TOKEN (`cxr-edge user token NAME`)")
            request.state.user = user
            return user
        if found is None:
            raise NeedLogin()
        request.state.user, request.state.csrf = found
        return found[0]

    def check_csrf(request: Request, form: dict) -> None:
        """After signed_in: the form carries the session's CSRF token."""
        if not secrets.compare_digest(str(form.get("csrf", "")), getattr(request.state, "csrf", "") or "\0"):
            raise HTTPException(403, "the form has expired or did not come from this box: reload the page and "
                                     "try again")

    def login_page(request: Request):
        token = secrets.token_urlsafe(24)
        response = page(request, "login.html", login_csrf=token, message=request.query_params.get("m", ""))
        _cookie(response, LOGIN_COOKIE, token, secure, max_age=3600)
        return response

    def login(request: Request, form: dict):
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
            raise HTTPException(403, "the login form has expired: reload the page and try again")
        name, address = str(form.get("name", ""))[:64], request.client.host if request.client else "?"
        # scrypt takes tens of milliseconds: off the event loop (as every handler here), so other pages go on
        outcome = accounts.log_in(context.state, name, str(form.get("password", "")), address)
        # a name that is no user may be anything typed in the wrong field (a patient ID): never logged
        who = f"user {name!r}" if accounts.is_user(context.state, name) else "an unknown user name"
        if outcome == "refused":
            context.log(f"web: login refused for {who} from {address}: too many failed logins in a minute")
            return RedirectResponse("/login?m=wait", status_code=303)
        if outcome == "wrong":
            context.log(f"web: failed login for {who} from {address}")
            return RedirectResponse("/login?m=wrong", status_code=303)
        session, _ = outcome
        context.log(f"web: {name} logged in from {address}")
        response = RedirectResponse("/worklist", status_code=303)
        _cookie(response, SESSION_COOKIE, session, secure)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    def logout(request: Request, form: dict):
        signed_in(request)
        check_csrf(request, form)
        accounts.log_out(context.state, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login?m=out", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def which_filter(request: Request) -> tuple[str, int]:
        which = request.query_params.get("filter", "to_review")
        if which not in worklist.FILTERS:
            which = "to_review"
        try:
            number = min(10**6, max(0, int(request.query_params.get("page", "0"))))
        except ValueError:
            number = 0
        return which, number

    def worklist_page(request: Request):
        signed_in(request)
        which, number = which_filter(request)
        rows, total = worklist.worklist(context.state, which, number)
        return page(request, "worklist.html", rows=rows, total=total, which=which, page_number=number,
                    pages=max(1, -(-total // worklist.PAGE)), version=worklist.version(context.state))

    def worklist_rows(request: Request):
        signed_in(request)
        which, number = which_filter(request)
        rows, total = worklist.worklist(context.state, which, number)
        return page(request, "rows.html", rows=rows, total=total)

    def worklist_version(request: Request):
        signed_in(request)
        return JSONResponse({"version": worklist.version(context.state)})

    def study_or_404(request: Request) -> dict:
        return _found(worklist.study(context.state, request.path_params["study_id"]), "study")

    def study_page(request: Request):
        signed_in(request)
        found = study_or_404(request)
        for image in found["images"]:
            image["has_heatmap"] = pictures.heatmap_path(context.state.data, image["id"]).exists()
        return page(request, "study.html", study=found, codes=context.config.web.confirmatory_codes,
                    findings=reviews.FINDINGS, message=request.query_params.get("m", ""), status=context.status())

    def review(request: Request, form: dict):
        user = signed_in(request)
        check_csrf(request, form)
        found = study_or_404(request)
        try:
            if form.get("kind") == "confirmation":
                reviews.add_confirmation(context.state, found["study_instance_uid"], user.name,
                                         str(form.get("code", "")), context.config.web.confirmatory_codes,
                                         str(form.get("note", "")))
            else:
                findings = {}
                for key, value in form.items():
                    number = key.removeprefix("finding-")
                    if key.startswith("finding-") and number.isdigit():
                        findings[int(number)] = str(value)
                reviews.add_review(context.state, found, user.name, findings, str(form.get("note", "")))
        except reviews.ReviewError as exc:
            response = page(request, "study.html", study=study_or_404(request), error=str(exc),
                            codes=context.config.web.confirmatory_codes, findings=reviews.FINDINGS, message="",
                            status=context.status())
            response.status_code = 400
            return response
        context.log(f"web: {user.name} recorded a {form.get('kind') or 'review'} on study #{found['id']}")
        return RedirectResponse(f"/study/{found['id']}?m=saved", status_code=303)

    def image_or_404(request: Request) -> dict:
        return _found(worklist.instance(context.state, request.path_params["image_id"]), "image")

    def thumbnail(request: Request):
        signed_in(request)
        # a first thumbnail decodes the full image: seconds on a Pi, never on the event loop (no handler runs there)
        data = pictures.thumbnail(context.state, image_or_404(request), context.config)
        return Response(data, media_type="image/jpeg")  # no-store (HEADERS): no patient image left in a tablet

    def heatmap(request: Request):
        signed_in(request)
        path = pictures.heatmap_path(context.state.data, image_or_404(request)["id"])
        if not path.exists():
            raise HTTPException(404, "no heatmap yet: ask for one on the study page")
        return Response(path.read_bytes(), media_type="image/png")

    def make_heatmap(request: Request, form: dict):
        signed_in(request)
        check_csrf(request, form)
        image = image_or_404(request)
        message = ""
        if image["label"]:
            if not pictures.make_heatmap(context, image):
                message = "?m=busy"  # another heatmap is being made: one at a time, and no thread waits for it
        return RedirectResponse(f"/study/{image['study_id']}{message}#image-{image['id']}", status_code=303)

    def status_page(request: Request):
        signed_in(request)
        from cxr_edge.web.monitoring import chart, weekly

        status = context.status()
        weeks = weekly(context.state, status["expected"], status["expected_source"])
        return page(request, "status.html", status=status, weeks=weeks[-8:], chart=chart(weeks, status["expected"]),
                    alerts=[w for week in weeks[-8:] for w in week.warnings])

    def api_results(request: Request):
        signed_in(request, api=True)
        from cxr_edge.node.results import result_row, since_time  # shared with `cxr-edge results`

        try:
            since = since_time(request.query_params.get("since"))
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return JSONResponse({"notice": DISCLAIMER, "results": [result_row(r) for r in context.state.results(since)]})

    def healthz(request: Request):
        status = context.status()
        healthy = status["threads_alive"]  # the self-test passed, or the node would not have started
        dicom = {k: status["dicom"][k] for k in ("enabled", "listening", "ae_title", "port")}
        return JSONResponse({"status": "ok" if healthy else "degraded", "selftest": status["selftest"],
                             "dicom": dicom})

    def root(request: Request):
        return RedirectResponse("/worklist", status_code=303)

    async def need_login(request: Request, exc: NeedLogin):
        return RedirectResponse("/login", status_code=303)

    async def http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/") or exc.status_code == 401:
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return page(request, "error.html", exc.status_code, status_code=exc.status_code, detail=exc.detail)

    async def server_error(request: Request, exc: Exception):
        context.log(f"web: error on {request.method} {request.url.path}: {type(exc).__name__}")
        return page(request, "error.html", 500, status_code=500,
                    detail="something went wrong on the box; the node's log says what")

    # Every handler is a plain function, which Starlette runs on its thread pool: none blocks the event loop on
    # SQLite, scrypt or a decode. A form's handler gets the form read first (posted).
    routes = [
        Route("/", root), Route("/healthz", healthz),
        Route("/login", login_page, methods=["GET"]), Route("/login", posted(login), methods=["POST"]),
        Route("/logout", posted(logout), methods=["POST"]),
        Route("/worklist", worklist_page), Route("/worklist/rows", worklist_rows),
        Route("/worklist/version", worklist_version),
        Route("/study/{study_id:int}", study_page), Route("/study/{study_id:int}/review", posted(review), methods=["POST"]),
        Route("/image/{image_id:int}/thumbnail.jpg", thumbnail), Route("/image/{image_id:int}/heatmap.png", heatmap),
        Route("/image/{image_id:int}/heatmap", posted(make_heatmap), methods=["POST"]),
        Route("/status", status_page), Route("/api/results", api_results),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, max_body_size=64 * 1024,  # forms are small: nothing big before a login
                    exception_handlers={NeedLogin: need_login, HTTPException: http_error, Exception: server_error})
    return SecurityHeaders(Contained(app))


class Contained:
    """Starlette answers an error with the error page (server_error), then raises it again for the server to log:
    uvicorn would log the traceback, whose message may quote a header value. Here it ends, logged by type only."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        try:
            await self.app(scope, receive, send)
        except Exception:  # noqa: BLE001 - answered already, and logged by server_error
            pass


class SecurityHeaders:
    """HEADERS on every response (a response that sets its own Cache-Control keeps it)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def posted(handler: Callable[[Request, dict], Response]):
    """An endpoint that reads the request's form (small: no files, ten fields) on the event loop, then runs
    `handler(request, form)` on the thread pool."""
    from starlette.concurrency import run_in_threadpool

    async def endpoint(request: Request) -> Response:
        form = dict(await request.form(max_files=0, max_fields=MAX_FORM_FIELDS))
        return await run_in_threadpool(handler, request, form)

    return endpoint


def _found(row: dict | None, what: str) -> dict:
    if row is None:
        raise HTTPException(404, f"no such {what} on this box")
    return row


def web_warnings(config: NodeConfig) -> list[str]:
    """What the status page and the log say about how the screen is reached."""
    web = config.web
    if not web.loopback and not web.tls:
        return [f"the web screen listens on {web.bind} without TLS: passwords and patient data cross the network "
                "unencrypted; set [web] tls_cert and tls_key"]
    return []


def _cookie(response: Response, name: str, value: str, secure: bool, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")


def _reason_words(stored: str | None) -> list[str]:
    """A stored result's reasons (codes, cxr_edge.reasons) in words, one per list item."""
    return [reason.words() for reason in from_json(stored)]


def _when(seconds) -> str:
    return "" if seconds is None else datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")
