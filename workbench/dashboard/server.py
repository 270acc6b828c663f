"""The dashboard server, for partners and school leaders: signed in, per viewer, read-only.

Run by `workbench serve` as ``python -m workbench.dashboard.server``. It is a Voila application
(tornado + jupyter_server) in one of two modes:

- **static** (the default): each release's report is rendered once, from files verified on the
  bytes read, and served as a self-contained page. No kernel, no websocket, no script.
- **live** (``--live``): Voila runs the dashboard notebook in a kernel per page, for pages that need
  a live kernel. Kernel channels are guarded (bounded frame parsing, widget traffic and widget comm
  targets only, capped comms and frame size, no tracebacks or stderr to the page), and kernels are
  capped per viewer and in total, with a hard lifetime.

In both modes: sign-in by viewer token (``?token=`` link once, then a signed SameSite cookie; or
the login form), checked against the tokens file on every request and rate-limited per address;
revoking a token closes that viewer's channels and kernels within a second; tokens are scrubbed
from every log line; downloads are verified against the manifest on the bytes sent; error, sign-in
and sign-out pages are offline and never show an exception.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hmac
import json
import logging
import os
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import urlencode, urlparse

import jinja2
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.auth.login import LoginFormHandler
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from tornado.ioloop import PeriodicCallback
from traitlets import Unicode
from traitlets.config import Config

import voila.handler
from voila.app import Voila
from voila.request_info_handler import RequestInfoSocketHandler
from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

from workbench.config import PROJECT_ROOT
from workbench.dashboard import access, filters, pages, wire
from workbench.dashboard.content import read_verified
from workbench.dashboard.limits import DashboardLimits, KernelLedger, SignInLimiter
from workbench.dashboard.view import QUERY_KEY_VAR, RELEASES_VAR, SELECTED_VAR, STORE_VAR, VIEWER_VAR
from workbench.release.store import ReleaseError, ReleaseStore

NOTEBOOK = Path(__file__).with_name("dashboard.ipynb")
TEMPLATE_ROOT = Path(__file__).with_name("share")  # holds voila/templates/workbench (no CDN links)
PAGE_TEMPLATES = TEMPLATE_ROOT / "voila" / "templates" / "workbench"  # offline error pages
DEFAULT_RELEASES = PROJECT_ROOT / "releases"
DEFAULT_TOKENS = PROJECT_ROOT / "var" / "dashboard_tokens.json"
WIDGET_MESSAGES = wire.WIDGET_MESSAGE_TYPES
# Request headers the server sets for the kernel (after dropping any the browser sent).
HEADERS = {"X-Workbench-Viewer": VIEWER_VAR, "X-Workbench-Releases": RELEASES_VAR, "X-Workbench-Release": SELECTED_VAR}
CONTENT_SECURITY_POLICY = ("default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; connect-src 'self'; "
                           "frame-ancestors 'self'; form-action 'self'; base-uri 'self'")
COOKIE_OPTIONS = {"samesite": "Lax", "httponly": True, "expires_days": 0.5}
COOKIE_MAX_AGE_DAYS = 1
ENFORCE_EVERY_MS = 500  # how often revocations and kernel lifetimes are enforced

log = logging.getLogger("workbench.dashboard")


class ServerState:
    """What the running server keeps about viewers: kernels, open channels, sign-in failures."""

    def __init__(self, limits: DashboardLimits = DashboardLimits(), live: bool = False):
        self.configure(limits, live)

    def configure(self, limits: DashboardLimits, live: bool) -> None:
        self.limits, self.live = limits, live
        self.ledger = KernelLedger(limits)
        self.sign_in = SignInLimiter(limits.sign_in_failures, limits.sign_in_window)
        self.sockets: set[GuardedKernelWebsocket] = set()
        self.comms_opened: dict[str, int] = {}
        self.refused_messages = 0
        self.hidden_outputs = 0
        self.kernel_manager = None
        self.book: access.TokenBook | None = None
        self.pages: pages.RenderedReleases | None = None


STATE = ServerState()


def release_store() -> ReleaseStore:
    return ReleaseStore(os.environ.get(STORE_VAR) or DEFAULT_RELEASES)


# ---------------------------------------------------------------------------------------------
# Logs: no token ever reaches them


TOKEN_IN_TEXT = re.compile(r"((?:[?&;]|%3F|%26)(?:token|password)(?:=|%3D))[^&\s'\"#;]*", re.IGNORECASE)
AUTHORIZATION_IN_TEXT = re.compile(r"((?:Authorization|Cookie)['\"]?\s*[:=]\s*['\"]?)[^'\"\n,}]+", re.IGNORECASE)


# tornado's refusal of an argument that is not UTF-8 quotes the argument's bytes.
UNDECODED_SECRET = re.compile(r"(Invalid unicode in (?:token|password)): .*", re.IGNORECASE)


def scrub(text: str) -> str:
    """The text with any token, password, Authorization or Cookie value replaced."""
    text = UNDECODED_SECRET.sub(r"\1: [hidden]", text)
    return AUTHORIZATION_IN_TEXT.sub(r"\1[hidden]", TOKEN_IN_TEXT.sub(r"\1[hidden]", text))


class ScrubTokens(logging.Filter):
    """Rewrites every record's message without tokens (request URIs carry them on 4xx)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is dropped rather than risked
            return False
        cleaned = scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.msg, record.args = cleaned, None
        return True


def install_log_scrubbing(*loggers: logging.Logger) -> None:
    scrubber = ScrubTokens()
    for logger in (logging.getLogger(), logging.getLogger("tornado.access"), logging.getLogger("tornado.application"),
                   logging.getLogger("tornado.general"), *loggers):
        logger.addFilter(scrubber)
        for handler in logger.handlers:
            handler.addFilter(scrubber)


def log_request(handler: web.RequestHandler) -> None:
    """One line per request: status, method, path (query scrubbed), address, time. No headers."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING
    uri = scrub(handler.request.uri or "")
    logging.getLogger("tornado.access").log(level, "%d %s %s (%s) %.1fms", status, handler.request.method, uri,
                                            handler.request.remote_ip, 1000 * handler.request.request_time())


# ---------------------------------------------------------------------------------------------
# Who the viewer is


@dataclasses.dataclass
class ViewerUser(User):
    token_digest: str = ""


def _client(handler) -> str:
    return handler.request.remote_ip or "unknown"


class LimitReached(web.HTTPError):
    """A refusal with a Retry-After (tornado clears headers before the error page, so it rides here)."""

    def __init__(self, status: int, message: str, retry_after: int):
        super().__init__(status, message)
        self.retry_after = retry_after


def _too_many_attempts(handler) -> web.HTTPError:
    return LimitReached(429, "Too many sign-in attempts from your address; wait a minute and try again",
                        STATE.sign_in.retry_after(_client(handler)))


class ViewerIdentityProvider(IdentityProvider):
    """A user is a viewer from the tokens file; the cookie holds the token's digest, not the viewer."""

    tokens_file = Unicode("", config=True, help="The tokens file (token digest -> viewer).")
    cookie_name = Unicode("workbench-viewer", config=True)
    _book = None

    @property
    def book(self) -> access.TokenBook:
        if self._book is None:
            self._book = access.TokenBook(self.tokens_file)
            STATE.book = self._book
        return self._book

    def get_handlers(self) -> list:
        return [(r"/login", SignInHandler), (r"/logout", SignOutHandler)]

    def _user(self, digest: str | None) -> ViewerUser | None:
        viewer = self.book.viewer_for_digest(digest) if digest else None
        if viewer is None:
            return None
        return ViewerUser(username=viewer, name=viewer, display_name=viewer, token_digest=digest)

    def _check_guess(self, handler, token: str) -> ViewerUser | None:
        """A presented token: refused outright from a blocked address, counted when wrong."""
        client = _client(handler)
        if STATE.sign_in.blocked(client):
            raise _too_many_attempts(handler)
        user = self._user(access.token_digest(token))
        if user is None:
            STATE.sign_in.failed(client)
            log.warning("refused an unknown sign-in token from %s", client)
        return user

    def _undecodable(self, handler) -> web.HTTPError:
        """A token or password that is not UTF-8: a failed guess, refused without quoting it."""
        client = _client(handler)
        if STATE.sign_in.blocked(client):
            return _too_many_attempts(handler)
        STATE.sign_in.failed(client)
        log.warning("refused a sign-in token that is not text from %s", client)
        return web.HTTPError(400, "The token is not valid text")

    def get_token(self, handler):
        try:
            return super().get_token(handler)
        except web.HTTPError:  # tornado's own refusal would log the token's bytes
            raise self._undecodable(handler) from None

    async def get_user_token(self, handler):
        token = self.get_token(handler)
        return self._check_guess(handler, token) if token else None

    def user_to_cookie(self, user: User) -> str:
        return json.dumps({"digest": getattr(user, "token_digest", "")})

    def user_from_cookie(self, cookie_value: str) -> User | None:
        try:
            return self._user(json.loads(cookie_value).get("digest"))
        except (ValueError, AttributeError):
            return None

    def process_login_form(self, handler) -> User | None:
        try:
            typed = handler.get_argument("password", default="")
        except web.HTTPError:
            raise self._undecodable(handler) from None
        return self._check_guess(handler, typed) if typed else None

    @property
    def auth_enabled(self) -> bool:
        return True

    @property
    def login_available(self) -> bool:
        return True

    def validate_security(self, app, ssl_options=None) -> None:
        if not self.tokens_file:
            raise SystemExit("workbench serve needs a tokens file (workbench serve tokens add ...)")


class SignInHandler(LoginFormHandler):
    """The sign-in form: our offline page, rate-limited through the identity provider."""

    def _render(self, message=None):
        text = (message or {}).get("error", "")
        if text:
            self.set_status(401)
            text = "That token was not accepted."
        self.set_header("Content-Security-Policy", pages.STATIC_PAGE_POLICY)
        self.write(pages.login_page(self.xsrf_form_html(), self.base_url, self.get_argument("next", ""), text))

    def check_xsrf_cookie(self):
        try:
            return super().check_xsrf_cookie()
        except web.HTTPError:
            # a stale or missing form token: a plain 403 that says what to do, on the offline error page
            raise web.HTTPError(403, "The sign-in form expired; reload the page and try again") from None


class SignOutHandler(JupyterHandler):
    """Clears the sign-in cookie and says so (the viewer's open channels close with their page)."""

    @allow_unauthenticated
    def get(self):
        self.identity_provider.clear_login_cookie(self)
        self.set_header("Content-Security-Policy", pages.STATIC_PAGE_POLICY)
        self.set_header("Cache-Control", "no-store")
        self.write(pages.message_page("Signed out", "You are signed out of the released reports.", self.base_url))


class ViewerAuthorizer(Authorizer):
    """A signed-in viewer may use only the kernels rendered for them."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        if user is None:
            return False
        if resource == "kernels":
            kernel_id = getattr(handler, "kernel_id", None) or (handler.path_kwargs or {}).get("kernel_id")
            return bool(kernel_id) and STATE.ledger.owner(kernel_id) == user.username
        return resource in {"themes", "lab"}  # nothing else (contents, sessions, terminals) exists here


# ---------------------------------------------------------------------------------------------
# Kernels (live mode)


class OwnedKernelManager(AsyncMappingKernelManager):
    """Starts kernels with an allow-listed environment and records which viewer each one is for."""

    async def start_kernel(self, *args, **kwargs):
        env = access.kernel_environment(kwargs.get("env") or os.environ)
        kwargs["env"] = env
        kernel_id = await super().start_kernel(*args, **kwargs)
        viewer = env.get(VIEWER_VAR)
        if viewer:
            STATE.ledger.claim(kernel_id, viewer)
        return kernel_id

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        STATE.ledger.forget(kernel_id)
        STATE.comms_opened.pop(kernel_id, None)
        return await super().shutdown_kernel(kernel_id, *args, **kwargs)


async def end_kernel(kernel_id: str, why: str) -> None:
    """Closes the kernel's channels and shuts it down now."""
    STATE.ledger.forget(kernel_id)
    for socket in [s for s in STATE.sockets if s.kernel_id == kernel_id]:
        socket.close(4000, why)
    manager = STATE.kernel_manager
    if manager is not None and kernel_id in manager:
        log.info("shutting kernel %s down: %s", kernel_id, why)
        try:
            await manager.shutdown_kernel(kernel_id, now=True)
        except Exception as error:  # already gone (culled, closed by its page) is fine
            log.info("kernel %s was already gone (%s)", kernel_id, type(error).__name__)


def enforce() -> None:
    """Every ENFORCE_EVERY_MS: revoked tokens lose their channels and kernels; old kernels end."""
    book = STATE.book
    if book is not None:
        try:
            entries = book.entries()
        except access.AccessError as error:
            log.error("tokens file unreadable, keeping the last good one: %s", error)
            entries = None
        if entries is not None:
            digests = set(entries)
            viewers = {entry.viewer for entry in entries.values()}
            for socket in [s for s in STATE.sockets if s.token_digest not in digests]:
                log.info("closing a kernel channel of %s: token revoked", socket.viewer)
                socket.close(4001, "token revoked")
            for kernel_id in [k for k in STATE.ledger.owners if STATE.ledger.owner(k) not in viewers]:
                asyncio.ensure_future(end_kernel(kernel_id, "its viewer's token was revoked"))
    for kernel_id in STATE.ledger.expired():
        asyncio.ensure_future(end_kernel(kernel_id, "it reached the kernel lifetime"))


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
            STATE.ledger.claim(msg["kernel_id"], viewer)
        super().send_updates(msg)


class GuardedKernelWebsocket(VoilaKernelWebsocketHandler):
    """The kernel channel, for its owner only, carrying bounded widget messages only."""

    viewer = ""
    token_digest = ""

    async def get(self, kernel_id):
        user = self.current_user
        if user is not None:
            held = sum(1 for s in STATE.sockets if s.viewer == user.username)
            if held >= STATE.limits.sockets_per_viewer:
                raise LimitReached(429, "Too many open report pages", 60)
        return await super().get(kernel_id)

    async def open(self, kernel_id):
        self.viewer = self.current_user.username
        self.token_digest = getattr(self.current_user, "token_digest", "")
        STATE.sockets.add(self)
        return await super().open(kernel_id)

    def _refuse(self, reason: str) -> None:
        STATE.refused_messages += 1
        self.log.warning("refused a message on kernel %s from %s: %s", self.kernel_id, self.viewer, reason)

    def on_message(self, ws_msg):
        try:
            message = wire.read_incoming(ws_msg, self.selected_subprotocol, STATE.limits.message_bytes)
        except wire.RefusedMessage as refused:
            self._refuse(str(refused))
            self.close(1008, "malformed message")  # a broken frame is not something the page sends
            return None
        try:
            wire.check_incoming(message)
            if message.msg_type == "comm_open":
                opened = STATE.comms_opened.get(self.kernel_id, 0)
                if opened >= STATE.limits.comms_per_kernel:
                    raise wire.RefusedMessage(f"the page already opened {opened} comms in this kernel")
                STATE.comms_opened[self.kernel_id] = opened + 1
        except wire.RefusedMessage as refused:
            self._refuse(str(refused))
            return None
        return super().on_message(ws_msg)

    def write_message(self, message, binary=False):
        try:
            shown = self._shown(message)
        except (wire.RefusedMessage, ValueError, KeyError, TypeError, IndexError, AttributeError):
            shown = None  # a kernel message that cannot be read is not sent on
        if shown is None:
            STATE.hidden_outputs += 1
            self.log.info("kept an error report or stderr of kernel %s from the page", self.kernel_id)
            return None
        return super().write_message(shown, binary)

    @staticmethod
    def _shown(message):
        """The message as the page may see it, or None: no error reports, stderr or tracebacks."""
        if isinstance(message, bytes):
            channel, parts = wire.read_outgoing_v1(message)
            header = json.loads(parts[0])
            msg_type = header.get("msg_type")
            if msg_type in ("stream", "error") or msg_type.endswith("_reply"):
                content = json.loads(parts[3]) if parts[3] else {}
                if wire.hidden_output(msg_type, content):
                    return None
                if any(key in content for key in ("traceback", "ename", "evalue")):
                    parts[3] = json.dumps(wire.without_error_detail(content)).encode()
                    return wire.write_v1(channel, parts)
            return message
        if isinstance(message, str):
            decoded = json.loads(message)
            msg_type = (decoded.get("header") or {}).get("msg_type") or decoded.get("msg_type")
            content = decoded.get("content") or {}
            if wire.hidden_output(msg_type, content):
                return None
            if isinstance(content, dict) and any(key in content for key in ("traceback", "ename", "evalue")):
                decoded["content"] = wire.without_error_detail(content)
                return json.dumps(decoded)
        return message

    def on_close(self):
        STATE.sockets.discard(self)
        if getattr(self, "connection", None) is not None:
            return super().on_close()
        return None


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
        if STATE.ledger.owner(kernel_id) != self.current_user.username:
            raise web.HTTPError(403)
        return await super().post(kernel_id)


# ---------------------------------------------------------------------------------------------
# Pages and downloads


def _viewer_releases(viewer: str) -> tuple[ReleaseStore, list[str]]:
    store = release_store()
    return store, [r for r in access.allowed_releases(store, viewer) if access.can_open(store, viewer, r)]


def _drop_token_from_address(handler) -> bool:
    """Signed in by link: the cookie is set; send the browser to the same page without the token."""
    if not handler.get_argument("token", None):
        return False
    rest = {k: handler.get_argument(k) for k in handler.request.arguments if k != "token"}
    handler.redirect(handler.request.path + (f"?{urlencode(rest)}" if rest else ""))
    return True


class StaticDashboardHandler(JupyterHandler):
    """The report page in static mode: the viewer's pre-rendered releases, no kernel."""

    @web.authenticated
    def get(self, path=None):
        if path:
            raise web.HTTPError(404)
        if _drop_token_from_address(self):
            return
        viewer = self.current_user.username
        store, allowed = _viewer_releases(viewer)
        release = self.get_argument("release", None)
        if release is not None and release not in allowed:
            self.log.warning("viewer %s refused release %r", viewer, release[:80])
            raise web.HTTPError(404, "No such report")
        selected = release or (allowed[0] if allowed else None)
        fragment = None
        if selected is not None:
            try:
                chosen = {name: self.get_argument(name, "") for name in filters.PARAMETERS}
                _, fragment = STATE.pages.page(selected).filtered(chosen)
            except (OSError, ValueError, ReleaseError) as error:
                self.log.error("release %s cannot be shown: %s", selected, type(error).__name__)
        menu = [(r, STATE.pages.label(r)) for r in allowed]
        self.log.info("viewer %s opened the dashboard (release %s; %d available)", viewer, selected, len(allowed))
        self.set_header("Content-Security-Policy", pages.STATIC_PAGE_POLICY)
        self.set_header("Cache-Control", "no-store")
        self.finish(pages.dashboard_page(viewer, menu, selected, fragment, self.base_url))

    @web.authenticated
    def head(self, path=None):
        # The page's headers, no body (tornado drops it for HEAD): what link checkers ask for.
        return self.get(path)


class DashboardHandler(TornadoVoilaHandler):
    """The report page in live mode: the viewer's releases, a kernel within the caps."""

    @web.authenticated
    async def get(self, path=None):
        if path:  # one page only; Voila would redirect other paths to its file route
            raise web.HTTPError(404)
        if _drop_token_from_address(self):
            return
        viewer = self.current_user.username
        store, allowed = _viewer_releases(viewer)
        release = self.get_argument("release", None)
        if release is not None and release not in allowed:
            self.log.warning("viewer %s refused release %r", viewer, release[:80])
            raise web.HTTPError(404, "No such report")
        admission = STATE.ledger.admit(viewer)
        if admission.refused == "viewer":
            raise LimitReached(429, "Your other report pages are still opening; try again in a moment", 5)
        if admission.refused == "server":
            raise LimitReached(503, "The reports are busy; try again in a minute", 60)
        try:
            for kernel_id in admission.evict:
                await end_kernel(kernel_id, f"{viewer} opened more than {STATE.limits.kernels_per_viewer} pages")
            self.log.info("viewer %s opened the dashboard (release %s; %d available)", viewer, release or "default",
                          len(allowed))
            for name in list(self.request.headers):
                if name.lower().startswith("x-workbench-"):
                    del self.request.headers[name]
            self.request.headers["X-Workbench-Viewer"] = viewer
            self.request.headers["X-Workbench-Releases"] = json.dumps(allowed)
            self.request.headers["X-Workbench-Release"] = release or ""
            return await super().get(path)
        finally:
            STATE.ledger.rendered(viewer)


class DownloadHandler(JupyterHandler):
    """Released tables (CSV/XLSX) of the viewer's own releases, checked on the bytes sent."""

    @web.authenticated
    async def get(self, release_id: str, name: str):
        store = release_store()
        try:
            path = access.downloadable_file(store, self.current_user.username, release_id, name)
            data = read_verified(store, release_id, store.manifest(release_id), name) if path else None
        except (OSError, ValueError, ReleaseError):  # a malformed id or a changed file is a missing file
            data = None
        if data is None:
            raise web.HTTPError(404, "No such file")
        media = "text/csv" if name.endswith(".csv") else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        self.set_header("Content-Type", media)
        self.set_header("Content-Disposition", f'attachment; filename="{release_id}_{Path(name).name}"')
        self.set_header("Cache-Control", "no-store")
        self.finish(data)


def _plain_errors(handler_class):
    """The handler, with error replies that carry a status, a message we wrote and nothing else.

    API errors are JSON without the traceback jupyter_server adds for unexpected exceptions; page
    errors use the offline templates; a LimitReached adds its Retry-After.
    """
    if not isinstance(handler_class, type) or not issubclass(handler_class, web.RequestHandler):
        return handler_class

    def write_error(self, status_code, **kwargs):
        if not hasattr(self, "_current_user"):
            # Refused before sign-in was looked at (an unknown method, an undecodable argument):
            # jupyter_server's error page would otherwise raise asking who the user is.
            self._current_user = None
        error = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(error, LimitReached):
            self.set_header("Retry-After", str(error.retry_after))
        if issubclass(handler_class, APIHandler):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": str(status_code), "reason": None}))
            return None
        return handler_class.write_error(self, status_code, **kwargs)

    return type(handler_class.__name__, (handler_class,), {"write_error": write_error})


REPLACEMENTS = {
    TornadoVoilaHandler: DashboardHandler,
    VoilaKernelWebsocketHandler: GuardedKernelWebsocket,
    VoilaShutdownKernelHandler: GuardedShutdownHandler,
}


class DashboardApp(Voila):
    """Voila with the handlers above in place of its own (live), or only ours (static)."""

    def init_settings(self):
        settings = super().init_settings()
        offline = jinja2.FileSystemLoader(str(PAGE_TEMPLATES))
        for key in ("jinja2_env", "voila_jinja2_env"):
            env = settings[key]
            env.loader = jinja2.ChoiceLoader([offline, env.loader])
        settings["log_function"] = log_request
        settings["serve_traceback"] = False
        settings["xsrf_cookie_kwargs"] = {"samesite": "Lax"}
        settings["websocket_max_message_size"] = STATE.limits.message_bytes
        STATE.kernel_manager = self.kernel_manager
        STATE.pages = pages.RenderedReleases(release_store(), self.base_url)
        if not STATE.live:
            self._render_releases()
        return settings

    def init_handlers(self):
        base = self.server_url.rstrip("/")
        download = (base + r"/workbench/download/([A-Za-z0-9_.-]+)/(tables/[^/]+)", DownloadHandler)
        if not STATE.live:
            rules = [download, *self.identity_provider.get_handlers(), (base + r"/(.*)", StaticDashboardHandler)]
        else:
            rules = [download]
            for rule in super().init_handlers():
                pattern, handler_class, *rest = rule
                if handler_class is RequestInfoSocketHandler:
                    pattern = pattern.replace("/voila/query/", "/voila/query/(?P<key>[A-Za-z0-9_-]+)/")
                    handler_class = ClaimingRequestInfo
                rules.append((pattern, REPLACEMENTS.get(handler_class, handler_class), *rest))
        return [(pattern, _plain_errors(handler_class), *rest) for pattern, handler_class, *rest in rules]

    def start(self):
        # Module-level messages (revocations, lifetimes, sign-in refusals) go where the app's go.
        log.handlers, log.propagate = list(self.log.handlers), False
        log.setLevel(logging.INFO)
        install_log_scrubbing(self.log, log)
        PeriodicCallback(enforce, ENFORCE_EVERY_MS).start()
        super().start()

    def _render_releases(self) -> None:
        """Static mode: every dashboard release is rendered once, before the first viewer comes."""
        store = release_store()
        for release_id in store.releases():
            try:
                if access.is_dashboard_release(store.manifest(release_id)) and not store.verify(release_id):
                    STATE.pages.page(release_id)
            except (OSError, ValueError, ReleaseError) as error:
                self.log.error("release %s not rendered: %s", release_id, type(error).__name__)
        self.log.info("rendered %d release page(s)", len(STATE.pages))


def build_config(*, tokens: str, port: int, ip: str, preheat: bool, pool_size: int, cull_idle: int,
                 live: bool = False) -> Config:
    c = Config()
    c.Voila.ip = ip
    c.Voila.port = port
    c.Voila.port_retries = 0
    c.Voila.open_browser = False
    c.Voila.identity_provider_class = ViewerIdentityProvider
    c.Voila.authorizer_class = ViewerAuthorizer
    c.Voila.tornado_settings = {"headers": {"Content-Security-Policy": CONTENT_SECURITY_POLICY}}
    c.ViewerIdentityProvider.tokens_file = tokens
    c.ViewerIdentityProvider.cookie_options = dict(COOKIE_OPTIONS)
    c.ViewerIdentityProvider.get_secure_cookie_kwargs = {"max_age_days": COOKIE_MAX_AGE_DAYS}
    vc = c.VoilaConfiguration
    vc.template = "workbench"
    vc.strip_sources = True
    vc.show_tracebacks = False
    vc.file_allowlist = []  # Voila's own file route serves nothing; downloads go through DownloadHandler
    vc.allow_template_override = "NO"
    vc.allow_theme_override = "NO"
    vc.http_header_envs = list(HEADERS)
    vc.multi_kernel_manager_class = OwnedKernelManager
    vc.preheat_kernel = preheat and live
    vc.default_pool_size = pool_size if preheat and live else 0
    c.MappingKernelManager.cull_idle_timeout = cull_idle
    c.MappingKernelManager.cull_interval = max(5, min(60, cull_idle // 2 or 5))
    c.MappingKernelManager.cull_connected = True
    c.VoilaKernelManager.fill_delay = 0
    return c


def main(argv: list[str] | None = None) -> None:
    defaults = DashboardLimits()
    parser = argparse.ArgumentParser(prog="python -m workbench.dashboard.server")
    parser.add_argument("--releases", default=os.environ.get(STORE_VAR) or str(DEFAULT_RELEASES))
    parser.add_argument("--tokens", default=str(DEFAULT_TOKENS))
    parser.add_argument("--port", type=int, default=8866)
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--no-preheat", action="store_true")
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--cull-idle", type=int, default=600)
    parser.add_argument("--kernels-per-viewer", type=int, default=defaults.kernels_per_viewer)
    parser.add_argument("--max-kernels", type=int, default=defaults.kernels_total)
    parser.add_argument("--kernel-lifetime", type=float, default=defaults.kernel_lifetime)
    parser.add_argument("--sign-in-failures", type=int, default=defaults.sign_in_failures)
    parser.add_argument("--sign-in-window", type=float, default=defaults.sign_in_window)
    args = parser.parse_args(argv)
    limits = dataclasses.replace(defaults, kernels_per_viewer=args.kernels_per_viewer, kernels_total=args.max_kernels,
                                 kernel_lifetime=args.kernel_lifetime, sign_in_failures=args.sign_in_failures,
                                 sign_in_window=args.sign_in_window)
    STATE.configure(limits, live=args.live)
    # The server and every kernel it starts keep allow-listed settings only.
    kept = access.kernel_environment(os.environ)
    for name in [n for n in os.environ if n not in kept]:
        os.environ.pop(name, None)
    os.environ[STORE_VAR] = str(Path(args.releases).resolve())
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(TEMPLATE_ROOT), os.environ.get("JUPYTER_PATH")) if p)
    os.environ.setdefault(QUERY_KEY_VAR, secrets.token_urlsafe(24))
    # VoilaHandler looks the request channel up by this module-level name.
    voila.handler.RequestInfoSocketHandler = ClaimingRequestInfo
    config = build_config(tokens=str(Path(args.tokens).resolve()), port=args.port, ip=args.ip,
                          preheat=not args.no_preheat, pool_size=args.pool_size, cull_idle=args.cull_idle,
                          live=args.live)
    DashboardApp.launch_instance(argv=[str(NOTEBOOK)], config=config)


if __name__ == "__main__":
    main(sys.argv[1:])
