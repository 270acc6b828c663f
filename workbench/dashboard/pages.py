"""The dashboard's static pages: the report page, sign-in, signed-out and error pages.

Self-contained HTML: styles inline, charts as data URLs, no script, nothing from another host, so
every page works offline and under a content security policy that allows nothing external.

Each release's report is rendered once (`RenderedReleases`) from files whose checksums were verified
on the bytes read, and kept as an HTML fragment; a viewer's page wraps the fragment in a menu of
that viewer's releases. Pure: nothing here imports Jupyter.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import urlencode

from workbench.dashboard.content import STYLE, ReleaseContent, load_release, release_label, render_html
from workbench.dashboard.filters import Filters, options_for
from workbench.release.store import ReleaseStore, content_digest

PAGE_STYLE = """<style>
body {font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 70em; padding: 0 1em; color: #222}
main {min-width: 0}
.workbench-bar {display: flex; flex-wrap: wrap; justify-content: space-between; align-items: baseline; gap: 0 1em}
.workbench-bar h1 {margin: 0.3em 0}
.workbench-menu ul {padding-left: 1.2em}
.workbench-menu a[aria-current] {font-weight: bold}
.workbench-message {padding: 0.6em 1em; border: 1px solid #ccc; background: #f7f7f7}
form.workbench-login input {font-size: 1em; padding: 0.3em; width: 22em; max-width: 100%; box-sizing: border-box}
</style>"""
# The static pages need no script and nothing from another host.
STATIC_PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
                      "frame-ancestors 'none'; base-uri 'none'")


def document(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title>{PAGE_STYLE}{STYLE}</head><body>{body}</body></html>")


def dashboard_page(viewer: str, menu: list[tuple[str, str]], selected: str | None, fragment: str | None,
                   base_url: str = "/") -> str:
    """A viewer's page: their releases as links, and the selected release's report."""
    e = html.escape
    bar = (f"<header class='workbench-bar'><h1>Released reports</h1><p><span class='workbench-viewer'>"
           f"Signed in as {e(viewer)}</span> &middot; <a class='workbench-logout' href='{e(base_url)}logout'>Sign out</a>"
           f"</p></header>")
    if not menu:
        return document("Released reports", bar + "<main><p class='workbench-empty'>No released reports for you yet.</p></main>")
    items = "".join(
        f"<li><a href='{e(base_url)}?{e(urlencode({'release': release_id}))}'"
        f"{' aria-current=page' if release_id == selected else ''}>{e(label)}</a></li>"
        for release_id, label in menu)
    unavailable = "<p class='workbench-unavailable'>This report is not available right now.</p>"
    return document("Released reports", f"{bar}<nav class='workbench-menu'><h2>Your reports</h2><ul>{items}</ul></nav>"
                    f"<main>{fragment if fragment is not None else unavailable}</main>")


def login_page(xsrf_form_html: str, base_url: str = "/", next_url: str = "", message: str = "") -> str:
    e = html.escape
    note = f"<p class='workbench-message'>{e(message)}</p>" if message else ""
    action = f"{e(base_url)}login" + (f"?{e(urlencode({'next': next_url}))}" if next_url else "")
    return document("Sign in", f"<main><h1>Released reports: sign in</h1>{note}"
                    f"<form class='workbench-login' method='post' action='{action}'>{xsrf_form_html}"
                    "<p><label for='password'>Your access token</label><br>"
                    "<input type='password' id='password' name='password' autocomplete='current-password' autofocus>"
                    " <button type='submit'>Sign in</button></p></form></main>")


def message_page(title: str, text: str, base_url: str = "/", link: tuple[str, str] | None = ("login", "Sign in")) -> str:
    e = html.escape
    more = f"<p><a href='{e(base_url)}{e(link[0])}'>{e(link[1])}</a></p>" if link else ""
    return document(title, f"<main><h1>{e(title)}</h1><p class='workbench-message'>{e(text)}</p>{more}</main>")


@dataclass
class RenderedPage:
    files_digest: str
    fragment: str  # unfiltered
    label: str
    content: ReleaseContent
    base_url: str = "/"

    def filtered(self, chosen: dict[str, str]) -> tuple[Filters, str]:
        """The filters the viewer chose (values the release does not offer are dropped) and the page.

        Filtering picks released tables and columns from the verified content; nothing is re-read.
        """
        filters = options_for(self.content).accept(chosen)
        if not filters.active:
            return filters, self.fragment
        return filters, render_html(self.content, self.base_url, filters)


class RenderedReleases:
    """Each release's report fragment, rendered once from verified files and reused.

    A fragment is re-rendered only when the release's manifest lists different files (a release
    never changes in place; a changed manifest means something rewrote it). Rendering reads every
    shown file once and checks its checksum on those bytes (`content.load_release`), so a fragment
    never holds altered data; the caller still refuses a release whose files no longer verify.
    """

    def __init__(self, store: ReleaseStore, base_url: str = "/"):
        self.store, self.base_url = store, base_url
        self._pages: dict[str, RenderedPage] = {}

    def page(self, release_id: str) -> RenderedPage:
        manifest = self.store.manifest(release_id)
        digest = content_digest(manifest.get("files") or {})
        cached = self._pages.get(release_id)
        if cached is None or cached.files_digest != digest:
            content = load_release(self.store, release_id)
            fragment = render_html(content, self.base_url)
            cached = RenderedPage(digest, fragment, release_label(release_id, manifest), content, self.base_url)
            self._pages[release_id] = cached
        return cached

    def label(self, release_id: str) -> str:
        cached = self._pages.get(release_id)
        return cached.label if cached else release_label(release_id, self.store.manifest(release_id))

    def __len__(self) -> int:
        return len(self._pages)
