"""The web screen in the node's process: uvicorn in a thread of its own (no signal handlers there: the node's
main thread owns SIGTERM), stopped with the node."""

from __future__ import annotations

import asyncio
import threading

from cxr_edge.web.app import Context, create_app


class WebServer(threading.Thread):
    def __init__(self, context: Context):
        super().__init__(name="cxr-web", daemon=True)
        import uvicorn

        web = context.config.web
        options = {"host": web.bind, "port": web.port, "log_level": "warning", "access_log": False,
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
    return web
