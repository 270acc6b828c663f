"""Voila over the release store, for partners and school leaders: signed in, per viewer, read-only.

Run by `workbench serve` as ``python -m workbench.dashboard.server``. On top of Voila this adds:

- sign-in by viewer token (``?token=`` link once, then a signed cookie; or the login form), checked
  against the tokens file on every request, so revoking a token takes effect at once;
- a page handler that works out the viewer's releases on the server, refuses any other
  ``?release=`` with 404, and hands the kernel the viewer and their releases as request variables
  it sets itself (client headers of the same name are overwritten);
- kernel ownership: a kernel belongs to the viewer it rendered for; its websocket, its REST model
  and its shutdown are refused to anyone else;
- a websocket guard that drops every message but widget traffic (no ``execute_request``), in
  addition to Voila's own message filter;
- an authorized download handler for the released CSV/XLSX files, and nothing else from disk;
- the preheated kernels' request channel behind a per-server key;
- kernels that inherit no warehouse or register settings, idle culling, and a content security
  policy that keeps the page from loading anything from another host.
"""

from __future__ import annotations

import argparse
import dataclasses
import hmac
import json
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlencode, urlparse

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Unicode
from traitlets.config import Config

import voila.handler
from voila.app import Voila
from voila.request_info_handler import RequestInfoSocketHandler
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler, read_header_from_binary_message

from workbench.config import PROJECT_ROOT
from workbench.dashboard import access
from workbench.dashboard.view import QUERY_KEY_VAR, RELEASES_VAR, SELECTED_VAR, STORE_VAR, VIEWER_VAR
from workbench.release.store import ReleaseStore


NOTEBOOK = Path(__file__).with_name("dashboard.ipynb")
TEMPLATE_ROOT = Path(__file__).with_name("share")  # holds voila/templates/workbench (no CDN links)
DEFAULT_RELEASES = PROJECT_ROOT / "releases"
DEFAULT_TOKENS = PROJECT_ROOT / "var" / "dashboard_tokens.json"
WIDGET_MESSAGES = frozenset({"comm_open", "comm_close", "comm_msg", "comm_info_request", "kernel_info_request"})
# Request headers the server sets for the kernel (after dropping any the browser sent).
HEADERS = {"X-Workbench-Viewer": VIEWER_VAR, "X-Workbench-Releases": RELEASES_VAR, "X-Workbench-Release": SELECTED_VAR}
CONTENT_SECURITY_POLICY = ("default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; connect-src 'self'; "
                           "frame-ancestors 'self'; form-action 'self'; base-uri 'self'")

# kernel id -> the viewer it was started or claimed for; refused to everyone else.
KERNEL_OWNERS: dict[str, str] = {}
# How many websocket messages the guard dropped (the benchmark and logs report it).
REFUSED_MESSAGES = {"count": 0}


def release_store() -> ReleaseStore:
    return ReleaseStore(os.environ.get(STORE_VAR) or DEFAULT_RELEASES)


@dataclasses.dataclass
class ViewerUser(User):
    token_digest: str = ""


class ViewerIdentityProvider(IdentityProvider):
    """A user is a viewer from the tokens file; the cookie holds the token's digest, not the viewer."""

    tokens_file = Unicode("", config=True, help="The tokens file (token digest -> viewer).")
    cookie_name = Unicode("workbench-viewer", config=True)
    _book = None

    @property
    def book(self) -> access.TokenBook:
        if self._book is None:
            self._book = access.TokenBook(self.tokens_file)
        return self._book

    def _user(self, digest: str | None) -> ViewerUser | None:
        viewer = self.book.viewer_for_digest(digest) if digest else None
        if viewer is None:
            return None
        return ViewerUser(username=viewer, name=viewer, display_name=viewer, token_digest=digest)

    async def get_user_token(self, handler):
        token = self.get_token(handler)
        return self._user(access.token_digest(token)) if token else None

    def user_to_cookie(self, user: User) -> str:
        return json.dumps({"digest": getattr(user, "token_digest", "")})

    def user_from_cookie(self, cookie_value: str) -> User | None:
        return self._user(json.loads(cookie_value).get("digest"))

    def process_login_form(self, handler) -> User | None:
        typed = handler.get_argument("password", default="")
        return self._user(access.token_digest(typed)) if typed else None

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def validate_security(self, app, ssl_options=None) -> None:
        if not self.tokens_file:
            raise SystemExit("workbench serve needs a tokens file (workbench serve tokens add ...)")


class ViewerAuthorizer(Authorizer):
    """A signed-in viewer may use only the kernels rendered for them."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        if user is None:
            return False
        if resource == "kernels":
            kernel_id = getattr(handler, "kernel_id", None) or (handler.path_kwargs or {}).get("kernel_id")
            return bool(kernel_id) and KERNEL_OWNERS.get(kernel_id) == user.username
        return resource in {"themes", "lab"}  # nothing else (contents, sessions, terminals) exists here


class OwnedKernelManager(AsyncMappingKernelManager):
    """Starts kernels with a scrubbed environment and records which viewer each one is for."""

    async def start_kernel(self, *args, **kwargs):
        env = access.kernel_environment(kwargs.get("env") or os.environ)
        kwargs["env"] = env
        kernel_id = await super().start_kernel(*args, **kwargs)
        viewer = env.get(VIEWER_VAR)
        if viewer:
            KERNEL_OWNERS[kernel_id] = viewer
        return kernel_id

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        KERNEL_OWNERS.pop(kernel_id, None)
        return await super().shutdown_kernel(kernel_id, *args, **kwargs)


class ClaimingRequestInfo(RequestInfoSocketHandler):
    """The preheated kernels' request channel: keyed, and it records who claimed a pooled kernel."""

    def open(self, key: str, kernel_id: str) -> None:  # noqa: D401 (tornado signature)
        expected = os.environ.get(QUERY_KEY_VAR, "")
        if not expected or not hmac.compare_digest(key, expected):
            self.close(code=4403)
            return
        super().open(kernel_id)

    def check_origin(self, origin: str) -> bool:
        return True  # the kernel connects from Python, without an Origin; the key is the check

    def on_close(self) -> None:
        # Voila's on_close removes *some* waiter even when this socket never registered (a refused key).
        if self in RequestInfoSocketHandler._waiters.values():
            super().on_close()

    @classmethod
    def send_updates(cls, msg: dict) -> None:
        viewer = (msg.get("payload") or {}).get(VIEWER_VAR)
        if viewer:
            KERNEL_OWNERS[msg["kernel_id"]] = viewer
        super().send_updates(msg)


class DashboardHandler(TornadoVoilaHandler):
    """The dashboard page: decides the viewer's releases and refuses any other release id."""

    @web.authenticated
    async def get(self, path=None):
        if path:  # one page only; Voila would redirect other paths to its file route
            raise web.HTTPError(404)
        if self.get_argument("token", None):
            # Signed in by link: the cookie is set; drop the token from the address bar and history.
            rest = {k: self.get_argument(k) for k in self.request.arguments if k != "token"}
            self.redirect(self.request.path + (f"?{urlencode(rest)}" if rest else ""))
            return
        viewer = self.current_user.username
        store = release_store()
        allowed = [r for r in access.allowed_releases(store, viewer) if access.can_open(store, viewer, r)]
        release = self.get_argument("release", None)
        if release is not None and release not in allowed:
            self.log.warning("viewer %s refused release %r", viewer, release[:80])
            raise web.HTTPError(404, "No such report")
        self.log.info("viewer %s opened the dashboard (release %s; %d available)", viewer, release or "default", len(allowed))
        for name in list(self.request.headers):
            if name.lower().startswith("x-workbench-"):
                del self.request.headers[name]
        self.request.headers["X-Workbench-Viewer"] = viewer
        self.request.headers["X-Workbench-Releases"] = json.dumps(allowed)
        self.request.headers["X-Workbench-Release"] = release or ""
        return await super().get(path)


class DownloadHandler(JupyterHandler):
    """Released tables (CSV/XLSX) of the viewer's own releases; nothing else."""

    @web.authenticated
    async def get(self, release_id: str, name: str):
        store = release_store()
        try:
            path = access.downloadable_file(store, self.current_user.username, release_id, name)
        except Exception:  # a malformed id is a missing file, not an error page
            path = None
        if path is None:
            raise web.HTTPError(404, "No such file")
        media = "text/csv" if path.suffix == ".csv" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        self.set_header("Content-Type", media)
        self.set_header("Content-Disposition", f'attachment; filename="{release_id}_{path.name}"')
        self.set_header("Cache-Control", "no-store")
        self.finish(path.read_bytes())


def _message_type(message) -> str | None:
    if isinstance(message, bytes):
        header = read_header_from_binary_message(message)
    else:
        try:
            header = json.loads(message).get("header")
        except (ValueError, AttributeError):
            header = None
    return (header or {}).get("msg_type")


class GuardedKernelWebsocket(VoilaKernelWebsocketHandler):
    """The kernel channel, for its owner only, carrying widget messages only."""

    def on_message(self, ws_msg):
        msg_type = _message_type(ws_msg)
        if msg_type not in WIDGET_MESSAGES:
            REFUSED_MESSAGES["count"] += 1
            self.log.warning("refused a %r message on kernel %s from %s", msg_type, self.kernel_id,
                             getattr(self.current_user, "username", None))
            return None
        return super().on_message(ws_msg)


class GuardedShutdownHandler(VoilaShutdownKernelHandler):
    """Voila's page shuts its kernel down on unload with a beacon, which carries no XSRF token.

    A same-origin beacon is accepted (the browser sets Origin; a page on another site cannot
    forge it), and only the kernel's owner may shut it down.
    """

    def check_xsrf_cookie(self):
        origin = self.request.headers.get("Origin")
        if origin and urlparse(origin).netloc == self.request.host:
            return None
        return super().check_xsrf_cookie()

    @web.authenticated
    async def post(self, kernel_id):
        if KERNEL_OWNERS.get(kernel_id) != self.current_user.username:
            raise web.HTTPError(403)
        return await super().post(kernel_id)


REPLACEMENTS = {
    TornadoVoilaHandler: DashboardHandler,
    VoilaKernelWebsocketHandler: GuardedKernelWebsocket,
    VoilaShutdownKernelHandler: GuardedShutdownHandler,
}


class DashboardApp(Voila):
    """Voila with the handlers above in place of its own."""

    def init_handlers(self):
        handlers = []
        for rule in super().init_handlers():
            pattern, handler_class, *rest = rule
            if handler_class is RequestInfoSocketHandler:
                pattern = pattern.replace("/voila/query/", "/voila/query/(?P<key>[A-Za-z0-9_-]+)/")
                handler_class = ClaimingRequestInfo
            handlers.append((pattern, REPLACEMENTS.get(handler_class, handler_class), *rest))
        download = (self.server_url.rstrip("/") + r"/workbench/download/([A-Za-z0-9_.-]+)/(tables/[^/]+)", DownloadHandler)
        return [download, *handlers]


def build_config(*, tokens: str, port: int, ip: str, preheat: bool, pool_size: int, cull_idle: int) -> Config:
    c = Config()
    c.Voila.ip = ip
    c.Voila.port = port
    c.Voila.port_retries = 0
    c.Voila.open_browser = False
    c.Voila.identity_provider_class = ViewerIdentityProvider
    c.Voila.authorizer_class = ViewerAuthorizer
    c.Voila.tornado_settings = {"headers": {"Content-Security-Policy": CONTENT_SECURITY_POLICY}}
    c.ViewerIdentityProvider.tokens_file = tokens
    vc = c.VoilaConfiguration
    vc.template = "workbench"
    vc.strip_sources = True
    vc.show_tracebacks = False
    vc.file_allowlist = []  # Voila's own file route serves nothing; downloads go through DownloadHandler
    vc.allow_template_override = "NO"
    vc.allow_theme_override = "NO"
    vc.http_header_envs = list(HEADERS)
    vc.multi_kernel_manager_class = OwnedKernelManager
    vc.preheat_kernel = preheat
    vc.default_pool_size = pool_size if preheat else 0
    c.MappingKernelManager.cull_idle_timeout = cull_idle
    c.MappingKernelManager.cull_interval = max(5, min(60, cull_idle // 2 or 5))
    c.MappingKernelManager.cull_connected = True
    c.VoilaKernelManager.fill_delay = 0
    return c


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workbench.dashboard.server")
    parser.add_argument("--releases", default=os.environ.get(STORE_VAR) or str(DEFAULT_RELEASES))
    parser.add_argument("--tokens", default=str(DEFAULT_TOKENS))
    parser.add_argument("--port", type=int, default=8866)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--no-preheat", action="store_true")
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--cull-idle", type=int, default=600)
    args = parser.parse_args(argv)
    # The server and every kernel it starts: no warehouse, register or configuration settings.
    for name in access.KERNEL_ENV_DENYLIST:
        os.environ.pop(name, None)
    os.environ[STORE_VAR] = str(Path(args.releases).resolve())
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(TEMPLATE_ROOT), os.environ.get("JUPYTER_PATH")) if p)
    os.environ.setdefault(QUERY_KEY_VAR, secrets.token_urlsafe(24))
    # VoilaHandler looks the request channel up by this module-level name.
    voila.handler.RequestInfoSocketHandler = ClaimingRequestInfo
    config = build_config(tokens=str(Path(args.tokens).resolve()), port=args.port, ip=args.ip,
                          preheat=not args.no_preheat, pool_size=args.pool_size, cull_idle=args.cull_idle)
    DashboardApp.launch_instance(argv=[str(NOTEBOOK)], config=config)


if __name__ == "__main__":
    main(sys.argv[1:])
