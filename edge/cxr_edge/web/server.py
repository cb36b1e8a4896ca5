"""The web screen in the node's process: uvicorn in a thread of its own (no signal handlers there: the node's
main thread owns SIGTERM), stopped with the node."""

from __future__ import annotations

import asyncio
import threading

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cxr_edge.web.app import HEADERS, Context, create_app

READ_SECONDS = 10.0  # from a connection (or the end of its last answer) to a whole request, head and body


class Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 with two things it lacks: a request must arrive whole (head and body) within READ_SECONDS
    of the connection or of the previous answer, or the connection is closed (a client sending a header a byte at a
    time held a connection for ever); and uvicorn's own answer to a malformed request carries the security
    headers every other answer has."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._deadline = None
        self._arm()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(READ_SECONDS, self._too_slow)

    def _too_slow(self) -> None:
        if self.conn.their_state not in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED) and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.DONE and self._deadline is not None:  # the request is in: the app's turn
            self._deadline.cancel()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same time

    def connection_lost(self, exc) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                   *((name.lower().encode(), value.encode()) for name, value in HEADERS.items())]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=msg.encode("ascii"))))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()


class WebServer(threading.Thread):
    def __init__(self, context: Context):
        super().__init__(name="cxr-web", daemon=True)
        import uvicorn

        web = context.config.web
        options = {"host": web.bind, "port": web.port, "log_level": "warning", "access_log": False, "http": Protocol,
                   "server_header": False, "lifespan": "off", "timeout_graceful_shutdown": 3,
                   # forwarded headers only from the proxies the configuration names (uvicorn trusts loopback's)
                   "proxy_headers": bool(web.trusted_proxies),
                   "forwarded_allow_ips": ",".join(web.trusted_proxies) or None}
        if web.tls:
            options.update(ssl_certfile=web.tls_cert, ssl_keyfile=web.tls_key)
        self.server = uvicorn.Server(uvicorn.Config(create_app(context), **options))
        self.failed: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # noqa: BLE001 - reported by the node, which then stops
            self.failed = exc

    def wait_started(self, timeout: float = 20) -> bool:
        """True once listening; False when it could not (the port taken, a bad certificate)."""
        for _ in range(int(timeout * 20)):
            if self.server.started:
                return True
            if not self.is_alive():
                return False
            threading.Event().wait(0.05)
        return self.server.started

    def stop(self) -> None:
        self.server.should_exit = True


def start_web(config, state, status, classifier_factory, log, warnings: list[str] = (),
              bundle_line: object = "") -> WebServer:
    """The clinician's screen, in the node's process; StartError when it cannot listen."""
    from cxr_edge.language import SOURCE, using
    from cxr_edge.node.serve import StartError
    from cxr_edge.web.app import web_warnings

    web = WebServer(Context(config, state, log, status, classifier_factory, list(warnings), bundle_line))
    web.start()
    if not web.wait_started():
        raise StartError(f"the web screen cannot listen on {config.web.bind}:{config.web.port} "
                         f"({web.failed or 'see the lines above'}): is the port taken? check [web] port")
    scheme = "https" if config.web.tls else "http"
    log(f"web screen on {scheme}://{config.web.bind}:{config.web.port}/")
    with using(SOURCE):  # the log is in English, whatever the screen speaks
        for warning in web_warnings(config):
            log(f"WARNING: {warning}")
    if config.web.allowed_hosts == ["*"]:
        log(f"WARNING: [web] hosts is not set and the screen listens on {config.web.bind}: any Host header is "
            "answered; list the names and addresses tablets use to reach the box, such as "
            "hosts = [\"cxr-box.local\", \"192.168.1.20\"]")
    return web
