"""Who may see what, decided in one place: each route of the screen declares what it needs (cxr_edge.web.app's
route table) and `authenticate` checks it before any handler runs, so a new route cannot forget.

- PUBLIC: the login page, /healthz, the static files.
- SIGNED_IN: a session (the screen), or for a JSON twin (`.json`) or the API an API token (scripts).
- ADMIN: the same, with the admin role: the users' activity and the audit trail.
"""

from __future__ import annotations

import secrets

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from cxr_edge.language import N_
from cxr_edge.web import accounts

PUBLIC, SIGNED_IN, ADMIN = "public", "signed in", "admin"
NEEDS = (PUBLIC, SIGNED_IN, ADMIN)
SESSION_COOKIE = "cxr_session"
LOGIN_COOKIE = "cxr_login"


class NeedLogin(Exception):
    """A page that needs a session, asked for without one: answered with the login page."""


def authenticate(state, request: Request, need: str, scripted: bool, activity: bool = True,
                 lifetime_hours: float = accounts.SESSION_HOURS) -> accounts.User | None:
    """The user the request is from, checked against what the route needs: NeedLogin (a page) or 401 (a JSON
    twin or the API: `scripted`) without a valid session or token, 403 for a reviewer on an admin route. Sets
    request.state.user and, for a session, request.state.csrf (the pages' forms carry it). A request that is no
    `activity` (a page's background poll) does not keep the session alive; none outlives `lifetime_hours`."""
    if need == PUBLIC:
        return None
    session = request.cookies.get(SESSION_COOKIE, "")
    found = accounts.session_user(state, session, activity, lifetime_hours) if session else None
    if found is not None:
        request.state.user, request.state.csrf = found
    elif scripted:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = accounts.user_for_token(state, token) if scheme.lower() == "bearer" and token else None
        if user is None:
            raise HTTPException(401, "log in, or send Authorization: Bearer TOKEN (`cxr-edge user token NAME`)")
        request.state.user = user
    else:
        raise NeedLogin()
    if need == ADMIN and request.state.user.role != "admin":
        # messages of the catalogue: the error page shows them in the reader's language
        raise HTTPException(403, N_("This page is for the box's admins: ask one, or `cxr-edge user add NAME --role "
                                    "admin`."))
    return request.state.user


def check_csrf(request: Request, form: dict) -> None:
    """After authenticate: the form carries the session's CSRF token."""
    if not secrets.compare_digest(str(form.get("csrf", "")), getattr(request.state, "csrf", "") or "\0"):
        raise HTTPException(403, N_("The form has expired or did not come from this box: reload the page and try "
                                    "again."))


def set_cookie(response: Response, name: str, value: str, secure: bool, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")
