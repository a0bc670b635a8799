"""Keep a page's expensive results across the reruns of one session.

Streamlit reruns the whole page script on every widget change (choosing a segment to play,
downloading the timeline). Decoding a ten-minute upload and scoring it with a dozen models
takes tens of seconds, so the Predict page keeps the latest result of each kind per
session and recomputes only when its inputs change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import TypeVar

import streamlit as st

T = TypeVar("T")
_STORE = "_memo"


def digest(data: bytes | None) -> str | None:
    """A short fingerprint of uploaded bytes, for use in a memo key."""
    return None if data is None else hashlib.sha1(data).hexdigest()


def memo(kind: str, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` once per session for the latest ``key`` of ``kind``; an exception
    is raised to the caller and nothing is stored."""
    store = st.session_state.setdefault(_STORE, {})
    hit = store.get(kind)
    if hit is not None and hit[0] == key:
        return hit[1]
    store.pop(kind, None)  # free the previous result before computing the next
    value = compute()
    store[kind] = (key, value)
    return value
