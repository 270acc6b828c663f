"""Debian's chromium driven by Playwright, for the browser tests.

The browser comes from apt (`.ci/run` installs it); Playwright's own download is never used. The
flags keep chromium off the network, which this machine closes, and out of the sandbox it cannot
create as root.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"


@pytest.fixture(scope="session")
def chromium():
    """A running chromium; the test fails (not skips) when the browser is missing."""
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str, *, full_page: bool = True, keep: bool = False) -> Path:
    """Saves a screenshot under tests/screenshots/ and returns its path.

    Screenshots are ignored by git, except the few the README shows (`keep`): those are of the
    viewport only and stored with a 256-colour palette, so that they stay small in the repository.
    """
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page and not keep)
    if keep:
        from PIL import Image

        with Image.open(path) as image:
            small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)
    return path


# axe-core rules that judge a page's content. The version is the one bundled in the
# axe-playwright-python wheel (no download at test time).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def accessibility_problems(page, within: str | None = None) -> list[str]:
    """axe-core's violations on the page (or in the elements `within` selects), one line each."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"resultTypes": ["violations"], "runOnly": {"type": "tag", "values": AXE_TAGS}}
    results = Axe().run(page, context=within, options=options)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(str(n['target']) for n in v['nodes'][:3])}"
            for v in results.response["violations"]]


def sideways_scroll(page) -> int:
    """How many pixels the page scrolls sideways (0 when it fits the window)."""
    return page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
