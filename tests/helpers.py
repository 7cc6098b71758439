"""What the tests share besides fixtures: the app's test settings, a free loopback port, the one good
chat request, Chromium's flags, the tiers and the network guard's record. Fixtures are in conftest.py.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

TIERS = ("fast", "full", "gpu")


TIERS_SEEN: dict[str, list[str]] = {}  # every collected test's tier markers, before `-m` deselects any


def tier_problems(tiers: dict[str, list[str]]) -> list[str]:
    return [
        f"{test}: in no tier" if not found else f"{test}: in {' and '.join(found)}"
        for test, found in sorted(tiers.items())
        if len(found) != 1
    ]


class NetworkAccessError(RuntimeError):
    pass


REFUSED: list[object] = []  # every refused address, even where a library swallowed the error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


GOOD = dict(message="hello how are you ?", history=[], temperature=0.0, max_new_tokens=8, model="tiny-chat")


def app_settings(**fields):
    """Settings for an app under test: no preload, every streamed token sent (tiny models are fast)."""
    from shared.settings import Settings

    return Settings(**{"preload": False, "stream_interval": 0.0, "chat_engine": "transformers", **fields})


ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"  # the browser tests' screenshots


def dismiss_toasts(page) -> None:
    """Close error toasts left by earlier steps so screenshots show the app."""
    for close in page.locator(".toast-close").all():
        try:
            close.click(timeout=3_000)
        except PlaywrightError:  # Gradio timed the toast out (it left the DOM) before the click
            pass


def open_panel(chromium, url: str, tab: str, title: str, height: int = 1400):
    """A new page on ``url`` with ``tab`` open and its accordion ``title`` unfolded."""
    page = chromium.new_page(viewport={"width": 1300, "height": height})
    page.goto(url)
    expect(page.get_by_role("tab").first).to_be_visible(timeout=30_000)
    open_tab(page, tab)
    page.get_by_text(title).click()
    return page


def open_tab(page, name: str) -> None:
    """Open a tab by name, through its row's "More tabs" menu where a narrow screen put it there."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return
    for more in page.get_by_role("button", name="More tabs").all():
        if more.is_visible():
            more.click()
            hidden = page.locator(".overflow-dropdown:not(.hide) button").filter(has_text=re.compile(f"^{name}$"))
            if hidden.count():
                hidden.first.click()
                return
            more.click()
    raise AssertionError(f"no tab {name!r}")
