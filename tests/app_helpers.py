"""Opening the app's pages in AppTest, shared by the page tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

HOME = str(Path(__file__).resolve().parent.parent / "Home.py")


def open_page(page: str, *, clean: bool = False) -> AppTest:
    """Run Home.py and switch to ``page`` (``pages/<name>.py``); ``clean`` also asserts
    that no exception reached the page."""
    at = AppTest.from_file(HOME, default_timeout=180)
    at.run()
    if page != "pages/welcome.py":
        at.switch_page(page)
        at.run()
    if clean:
        assert not at.exception, [e.value for e in at.exception]
    return at
