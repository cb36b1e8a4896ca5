"""The web screen as a Starlette application: pages rendered by Jinja2 with autoescaping (every DICOM header value
is text, never markup), every asset served by the box itself, every page and API but /healthz behind a login.

Sessions are random cookies whose hash the database keeps (HttpOnly, SameSite=Strict, Secure under TLS); every
form carries the session's CSRF token, the login form a cookie-bound one. URLs hold internal ids only, never a
patient identifier or UID; no log line or error page shows patient data."""

from __future__ import annotations

import threading
from http import HTTPStatus
from dataclasses import dataclass, field
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

from cxr_edge import notice
from cxr_edge import language
from cxr_edge.labels import LABELS, in_words
from cxr_edge.node.config import NodeConfig
from cxr_edge.node.state import State
from cxr_edge.reasons import from_json
from cxr_edge.reports import triage
from cxr_edge.web import reviews, views, words, worklist
from cxr_edge.web.access import ADMIN, PUBLIC, SIGNED_IN, NeedLogin, authenticate, check_csrf

HERE = Path(__file__).parent
MAX_FORM_FIELDS = 40  # a review has a finding per image: a study of a few dozen images at most
# img-src blob: for the viewer's tool cursors, which Cornerstone3D makes from SVG in the page (same-origin blobs)
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'; "
                                      "form-action 'self'; base-uri 'none'",
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
    bundle_line: object = ""  # the bundle and whether it is set for this clinic, under each study (serve.BundleLine)
    render: Callable = None  # set by create_app: a View as its page
    _classifier: object = None
    _heat_lock: threading.Lock = field(default_factory=threading.Lock)

    def heat_classifier(self):
        if self._classifier is None:
            self._classifier = self.classifier_factory()
        return self._classifier


@dataclass(frozen=True)
class Page:
    """A route of the screen and what it needs (cxr_edge.web.access: public, signed in, admin). `form`: a POST whose
    form is read first (CSRF checked for all but the login form, which has its own); `twin`: its data also as JSON
    at PATH.json, with the same permission."""

    path: str
    handler: Callable
    need: str
    methods: tuple[str, ...] = ("GET",)
    form: bool = False
    twin: bool = False
    api: bool = False  # JSON for scripts: an API token is accepted as well as a session
    poll: bool = False  # asked by a page in the background: not a sign that someone is there


ROUTES = (
    Page("/", views.root, PUBLIC),
    Page("/healthz", views.healthz, PUBLIC),
    Page("/login", views.login_page, PUBLIC),
    Page("/login", views.login, PUBLIC, ("POST",), form=True),
    Page("/logout", views.logout, SIGNED_IN, ("POST",), form=True),
    Page("/language", views.choose_language, SIGNED_IN, ("POST",), form=True),
    Page("/worklist", views.worklist_page, SIGNED_IN, twin=True),
    Page("/worklist", views.worklist_search, SIGNED_IN, ("POST",), form=True),
    Page("/worklist/rows", views.worklist_rows, SIGNED_IN, poll=True),
    Page("/worklist/version", views.worklist_version, SIGNED_IN, poll=True),
    Page("/study/{study_id:int}", views.study_page, SIGNED_IN, twin=True),
    Page("/study/{study_id:int}/slip", views.slip, SIGNED_IN),
    Page("/study/{study_id:int}/review", views.review, SIGNED_IN, ("POST",), form=True),
    Page("/image/{image_id:int}/thumbnail.jpg", views.thumbnail, SIGNED_IN),
    Page("/image/{image_id:int}/heatmap.png", views.heatmap, SIGNED_IN),
    Page("/image/{image_id:int}/heatmap", views.make_heatmap, SIGNED_IN, ("POST",), form=True),
    Page("/image/{image_id:int}/heat.png", views.heat_layer, SIGNED_IN),
    Page("/image/{image_id:int}/full.json", views.full_description, SIGNED_IN, api=True),
    Page("/image/{image_id:int}/full.raw", views.full_values, SIGNED_IN, api=True),
    Page("/status", views.status_page, SIGNED_IN, twin=True),
    Page("/admin/activity", views.activity, ADMIN, twin=True),
    Page("/api/results", views.api_results, SIGNED_IN, api=True),
)


def create_app(context: Context) -> Starlette:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      extensions=["jinja2.ext.i18n"])
    language.install(env)
    env.globals.update(notice=notice, in_words=in_words, labels=LABELS, when=language.when,
                       reason_words=_reason_words, decimal=language.decimal, percent=language.percent,
                       person=words.person_name, age_sex=words.age_sex, result_of=words.result_of,
                       study_headline=words.study_headline,
                       headline=triage.headline, band_of=triage.band, band_words=triage.band_words,
                       band_advice=triage.band_advice, finding_words=reviews.finding_words,
                       filters=worklist.filter_names, languages=language.languages, language_name=language.name_of,
                       action_words=words.action_words, stick_state=words.stick_state, viewer_words=words.viewer_words,
                       candidate_verdict=words.candidate_verdict)

    def render(request: Request, view: views.View) -> HTMLResponse:
        with language.using(language_of(context, request)):
            html = env.get_template(view.template).render(
                request=request, user=getattr(request.state, "user", None), csrf=getattr(request.state, "csrf", ""),
                lang=language.current(), warnings=[*(language._(w) for w in context.bundle_warnings),
                                                    *web_warnings(context.config)], **view.data)
        return HTMLResponse(html, status_code=view.status)

    context.render = render

    async def need_login(request: Request, exc: NeedLogin):
        return RedirectResponse("/login", status_code=303)

    async def http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith("/api/") or request.url.path.endswith(".json") or exc.status_code == 401:
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        # a detail is a message of the catalogue (translated here), was translated where it was raised, or is
        # Starlette's own ("Not Found"), said in the reader's words instead
        with language.using(language_of(context, request)):
            own = exc.detail == HTTPStatus(exc.status_code).phrase
            detail = language._(views.NO_SUCH_PAGE if exc.status_code == 404 else views.NOT_ANSWERED) if own else \
                language._(exc.detail)
        return render(request, views.View("error.html", {"status_code": exc.status_code, "detail": detail},
                                          exc.status_code))

    async def server_error(request: Request, exc: Exception):
        context.log(f"web: error on {request.method} {request.url.path}: {type(exc).__name__}")
        with language.using(language_of(context, request)):
            detail = language._(views.SERVER_ERROR)
        return render(request, views.View("error.html", {"status_code": 500, "detail": detail}, 500))

    routes = [Route(page.path, _endpoint(context, page, twin=False), methods=list(page.methods)) for page in ROUTES]
    routes += [Route(f"{page.path}.json", _endpoint(context, page, twin=True)) for page in ROUTES if page.twin]
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))
    app = Starlette(routes=routes, max_body_size=64 * 1024,  # forms are small: nothing big before a login
                    exception_handlers={NeedLogin: need_login, HTTPException: http_error, Exception: server_error})
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    # only the host names the box is reached by ([web] hosts): a page asked for under another name (a DNS rebinding
    # page in the clinician's browser) gets a 400, with the security headers as every answer
    hosts = TrustedHostMiddleware(Contained(app), allowed_hosts=context.config.web.allowed_hosts, www_redirect=False)
    return SecurityHeaders(hosts, hsts=context.config.web.tls)


def _endpoint(context: Context, page: Page, twin: bool):
    """The route's one gate: the form read (on the event loop: small), then on the thread pool the permission the
    route declares (cxr_edge.web.access.authenticate), the CSRF token of a signed-in form, the handler, and its View
    rendered as the page or, for the JSON twin, as its data."""
    from starlette.concurrency import run_in_threadpool

    def run(request: Request, form: dict | None) -> Response:
        authenticate(context.state, request, page.need, scripted=twin or page.api, activity=not page.poll,
                     lifetime_hours=context.config.web.session_hours)
        if form is not None and page.need != PUBLIC:
            check_csrf(request, form)
        with language.using(language_of(context, request)):  # the handler's words too (a form's error)
            answer = page.handler(context, request, form) if page.form else page.handler(context, request)
            if not isinstance(answer, views.View):
                return answer
            if twin:
                return JSONResponse({"notice": notice(), **views.jsonable(answer.data)}, status_code=answer.status)
            return context.render(request, answer)

    async def endpoint(request: Request) -> Response:
        form = dict(await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)) if page.form else None
        return await run_in_threadpool(run, request, form)

    endpoint.page = page  # what the route table's test reads
    return endpoint


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
    """HEADERS on every response (a response that sets its own Cache-Control keeps it); under TLS, HSTS too."""

    def __init__(self, app, hsts: bool = False):
        self.app, self.hsts = app, hsts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if static:  # the box's own code and styles, no patient data: kept, and checked by ETag each time
                    headers["Cache-Control"] = "no-cache"
                if self.hsts:  # a browser that once reached the box over TLS never tries it in the clear
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def web_warnings(config: NodeConfig) -> list[str]:
    """What the status page and the log say about how the screen is reached."""
    web = config.web
    if not web.loopback and not web.tls:
        return [language._("The web screen listens on %(address)s without TLS: passwords and patient data cross the "
                           "network unencrypted; set [web] tls_cert and tls_key.") % {"address": web.bind}]
    return []


def language_of(context: Context, request: Request) -> str:
    """The language a request is answered in: the signed-in user's own choice, else the box's ([web] language); on
    the login page (no one signed in yet) the first of the box's languages the browser asks for."""
    user = getattr(request.state, "user", None)
    if user is not None:
        return user.language if user.language in language.languages() else context.config.web.language
    return language.negotiate(request.headers.get("accept-language", "")) or context.config.web.language


def _reason_words(stored: str | None) -> list[str]:
    """A stored result's reasons (codes, cxr_edge.reasons) in a clinician's words, one per list item."""
    return [reason.plain() for reason in from_json(stored)]
