"""The screen's handlers: each gets the request (already authenticated by cxr_edge.web.access against what its
route needs) and, for a form, the form (its CSRF token checked), and returns a View (a template and its data: the
page, or the data alone as its JSON twin) or a response. They run on the thread pool, never on the event loop."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from cxr_edge import notice
from cxr_edge.language import N_, _, languages
from cxr_edge.web import accounts, pictures, reviews, worklist
from cxr_edge.web.access import LOGIN_COOKIE, SESSION_COOKIE, set_cookie


@dataclass
class View:
    """A page: its template and the data it shows, which is also its JSON twin."""

    template: str
    data: dict = field(default_factory=dict)
    status: int = 200


def jsonable(value):
    """The data of a View as JSON takes it (dataclasses as dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


SERVER_ERROR = N_("Something went wrong on the box; the node's log says what.")
NO_HEATMAP = N_("No heatmap yet: ask for one on the study page.")
NO_SUCH_PAGE = N_("There is no such page on this box.")
NOT_ANSWERED = N_("The box cannot answer this request.")


def found(row: dict | None, what: str) -> dict:
    if row is None:
        raise HTTPException(404, _("No such study on this box.") if what == "study" else
                            _("No such image on this box."))
    return row


def root(context, request: Request):
    return RedirectResponse("/worklist", status_code=303)


def healthz(context, request: Request):
    status = context.status()
    healthy = status["threads_alive"]  # the self-test passed, or the node would not have started
    dicom = {k: status["dicom"][k] for k in ("enabled", "listening", "ae_title", "port")}
    return JSONResponse({"status": "ok" if healthy else "degraded", "selftest": status["selftest"], "dicom": dicom})


def login_page(context, request: Request):
    token = secrets.token_urlsafe(24)
    response = context.render(request, View("login.html", {"login_csrf": token,
                                                           "message": request.query_params.get("m", "")}))
    set_cookie(response, LOGIN_COOKIE, token, context.config.web.tls, max_age=3600)
    return response


def login(context, request: Request, form: dict):
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
        raise HTTPException(403, _("The login form has expired: reload the page and try again."))
    name, address = str(form.get("name", ""))[:64], request.client.host if request.client else "?"
    outcome = accounts.log_in(context.state, name, str(form.get("password", "")), address)
    # a name that is no user may be anything typed in the wrong field (a patient ID): never logged
    who = f"user {name!r}" if accounts.is_user(context.state, name) else "an unknown user name"
    if outcome == "refused":
        context.log(f"web: login refused for {who} from {address}: too many failed logins in a minute")
        return RedirectResponse("/login?m=wait", status_code=303)
    if outcome == "wrong":
        context.log(f"web: failed login for {who} from {address}")
        return RedirectResponse("/login?m=wrong", status_code=303)
    session, _csrf = outcome
    context.log(f"web: {name} logged in from {address}")
    context.state.audit(name, "logged in", detail=address)
    response = RedirectResponse("/worklist", status_code=303)
    set_cookie(response, SESSION_COOKIE, session, context.config.web.tls)
    response.delete_cookie(LOGIN_COOKIE)
    return response


def logout(context, request: Request, form: dict):
    accounts.log_out(context.state, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login?m=out", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def choose_language(context, request: Request, form: dict):
    """A user's own language, kept with the user: their pages only change. `back`: the page the switch was on."""
    chosen = str(form.get("language", ""))
    if chosen not in languages():
        raise HTTPException(400, _("Choose a language from the list."))
    accounts.set_language(context.state, request.state.user.name, chosen)
    back = str(form.get("back", ""))
    safe = back.startswith("/") and not back.startswith("//") and "\\" not in back and len(back) < 200
    return RedirectResponse(back if safe else "/worklist", status_code=303)


def _listing(request: Request, form: dict | None = None) -> dict:
    """What the worklist shows: a filter, a page, a day received (YYYY-MM-DD) and a search (patient ID or name: only
    ever from a form, never in the address)."""
    which = request.query_params.get("filter", "to_review")
    which = which if which in worklist.FILTERS else "to_review"
    try:
        number = min(10**6, max(0, int(request.query_params.get("page", "0"))))
    except ValueError:
        number = 0
    day = request.query_params.get("date", "")
    try:
        start = datetime.strptime(day, "%Y-%m-%d").timestamp() if day else None
    except ValueError:
        day, start = "", None
    search = str((form or {}).get("q", "")).strip()[:64]
    if search:  # a search looks at every study
        which, number = "all", 0
    return {"which": which, "page_number": number, "date": day, "start": start, "search": search}


def _worklist(context, listing: dict) -> dict:
    rows, total = worklist.worklist(context.state, listing["which"], listing["page_number"], listing["start"],
                                    listing["search"])
    return {**{k: v for k, v in listing.items() if k != "start"}, "rows": rows, "total": total,
            "pages": max(1, -(-total // worklist.PAGE)), "version": worklist.version(context.state)}


def worklist_page(context, request: Request):
    return View("worklist.html", _worklist(context, _listing(request)))


def worklist_search(context, request: Request, form: dict):
    return View("worklist.html", _worklist(context, _listing(request, form)))


def worklist_rows(context, request: Request):
    return View("rows.html", _worklist(context, _listing(request)))


def worklist_version(context, request: Request):
    return JSONResponse({"version": worklist.version(context.state)})


def _study(context, request: Request) -> dict:
    study = found(worklist.study(context.state, request.path_params["study_id"]), "study")
    for image in study["images"]:
        image["has_heatmap"] = pictures.heatmap_path(context.state.data, image["id"]).exists()
        image["has_heat_layer"] = pictures.heat_layer_path(context.state.data, image["id"]).exists()
    study["previous"], study["next"] = context.state.neighbours(study["id"])
    return study


def study_page(context, request: Request, error: str = "", status: int = 200):
    study = _study(context, request)
    context.state.audit(request.state.user.name, "viewed", study["study_instance_uid"])
    return View("study.html", {"study": study, "codes": context.config.web.confirmatory_codes,
                               "findings": reviews.FINDINGS, "message": request.query_params.get("m", ""),
                               "error": error, "bundle": str(context.bundle_line)}, status)


def slip(context, request: Request):
    """One printable page for the patient's file: the result, the review, the image with its heatmap, the notice."""
    study = _study(context, request)
    context.state.audit(request.state.user.name, "printed", study["study_instance_uid"])
    return View("slip.html", {"study": study, "bundle": str(context.bundle_line)})


def review(context, request: Request, form: dict):
    user = request.state.user
    study = _study(context, request)
    try:
        if form.get("kind") == "confirmation":
            reviews.add_confirmation(context.state, study["study_instance_uid"], user.name, str(form.get("code", "")),
                                     context.config.web.confirmatory_codes, str(form.get("note", "")))
        else:
            findings = {int(key.removeprefix("finding-")): str(value) for key, value in form.items()
                        if key.startswith("finding-") and key.removeprefix("finding-").isdigit()}
            reviews.add_review(context.state, study, user.name, findings, str(form.get("note", "")))
    except reviews.ReviewError as exc:
        return study_page(context, request, error=str(exc), status=400)
    context.state.audit(user.name, "reviewed" if form.get("kind") != "confirmation" else "recorded a confirmatory "
                        "result", study["study_instance_uid"])
    context.log(f"web: {user.name} recorded a {form.get('kind') or 'review'} on study #{study['id']}")
    return RedirectResponse(f"/study/{study['id']}?m=saved", status_code=303)


def _image(context, request: Request) -> dict:
    return found(worklist.instance(context.state, request.path_params["image_id"]), "image")


def thumbnail(context, request: Request):
    # a first thumbnail decodes the full image: seconds on a Pi, never on the event loop (no handler runs there)
    data = pictures.thumbnail(context.state, _image(context, request), context.config)
    return Response(data, media_type="image/jpeg")  # no-store (HEADERS): no patient image left in a tablet


def heatmap(context, request: Request):
    path = pictures.heatmap_path(context.state.data, _image(context, request)["id"])
    if not path.exists():
        raise HTTPException(404, _(NO_HEATMAP))
    return Response(path.read_bytes(), media_type="image/png")


def heat_layer(context, request: Request):
    path = pictures.heat_layer_path(context.state.data, _image(context, request)["id"])
    if not path.exists():
        raise HTTPException(404, _(NO_HEATMAP))
    return FileResponse(path, media_type="image/png")


def _full(context, request: Request):
    try:
        return pictures.full_image(context.state, _image(context, request))
    except ValueError as exc:
        raise HTTPException(422, _("This image cannot be shown at full resolution: %(why)s") % {"why": exc}) from None


def full_description(context, request: Request):
    """The viewer's description of an image at full resolution (size, value type, the header's windows, invert,
    range): made with its values on the first request."""
    return FileResponse(_full(context, request)[1], media_type="application/json")


def full_values(context, request: Request):
    """The image's values at full resolution and bit depth, raw little-endian, for the viewer."""
    return FileResponse(_full(context, request)[0], media_type="application/octet-stream")


def make_heatmap(context, request: Request, form: dict):
    image = _image(context, request)
    message = ""
    if image["label"] and not pictures.make_heatmap(context, image):
        message = "?m=busy"  # another heatmap is being made: one at a time, and no thread waits for it
    return RedirectResponse(f"/study/{image['study_id']}{message}#image-{image['id']}", status_code=303)


def status_page(context, request: Request):
    from cxr_edge.web.monitoring import chart, weekly

    status = context.status()
    weeks = weekly(context.state, status["expected"], status["expected_source"])
    return View("status.html", {"status": status, "weeks": weeks[-8:], "chart": chart(weeks, status["expected"]),
                                "alerts": [w for week in weeks[-8:] for w in week.warnings]})


def activity(context, request: Request):
    """For admins: the users, when each was last seen, and the audit trail (who viewed, reviewed or printed which
    study, and when; append-only, as the reviews are)."""
    return View("activity.html", {"users": context.state.user_activity(),
                                  "trail": context.state.audit_trail(limit=200)})


def api_results(context, request: Request):
    from cxr_edge.node.results import result_row, since_time  # shared with `cxr-edge results`

    try:
        since = since_time(request.query_params.get("since"))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return JSONResponse({"notice": notice(), "results": [result_row(r) for r in context.state.results(since)]})

