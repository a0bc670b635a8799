"""Shared fixtures: an isolated cache/runs folder per test session, and audio writers."""

from __future__ import annotations

import os
from pathlib import Path

#: The cores this test process may use before an xdist worker keeps to its share of them.
_ALL_CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin_xdist_worker() -> None:
    # Under pytest-xdist (`-n N`), each worker keeps to its own share of the cores, and so
    # do the processes it starts (affinity is inherited): the library sizes its torch
    # threads and feature pools by `ser.parallel.cpu_count()`, so two workers each
    # believing they own every core would oversubscribe the machine and slow both.
    # Done before numpy or torch start their thread pools.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = _ALL_CORES
    share = cpus[int(worker[2:]) % count::count]
    if share and len(cpus) >= count:
        os.sched_setaffinity(0, share)


_pin_xdist_worker()

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

_SESSION_DIR: Path | None = None


def pytest_configure(config):
    # Point every writable folder of the library at a private temp folder before any test
    # imports ser, so tests never touch the developer's caches, runs or shipped models.
    global _SESSION_DIR
    import tempfile

    _SESSION_DIR = Path(tempfile.mkdtemp(prefix="ser-tests-"))
    os.environ["SER_CACHE_DIR"] = str(_SESSION_DIR / "cache")
    os.environ["SER_RUNS_DIR"] = str(_SESSION_DIR / "runs")
    os.environ.pop("SER_DATA_DIR", None)
    # A developer's public-mode settings must not leak into the tests (tests that need
    # public mode set these themselves).
    for var in ("SER_PUBLIC", "SER_CORPORA", "SER_MAX_SECONDS"):
        os.environ.pop(var, None)
    os.environ["SER_CONFIG"] = str(_SESSION_DIR / "no-ser.toml")


@pytest.fixture(scope="session")
def session_dir() -> Path:
    assert _SESSION_DIR is not None
    return _SESSION_DIR


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """The synthetic demo corpus, generated once per session."""
    from ser.corpora import demo

    return demo.ensure()


@pytest.fixture(scope="session")
def tess_pool(demo_root, tmp_path_factory) -> str:
    """The demo corpus pooled with a small TESS-named corpus (2 speakers × 3 words × 6
    emotions) the session writes: a data string for pool tests."""
    root = tmp_path_factory.mktemp("tess-pool")
    for s_i, spk in enumerate(("OAF", "YAF")):
        for w_i, word in enumerate(("back", "dog", "keen")):
            for e_i, emo in enumerate(("angry", "disgust", "fear", "happy", "neutral", "sad")):
                write_clip(root / f"{spk}_{emo}" / f"{spk}_{word}_{emo}.wav", 0.8, 24414,
                           freq=160 + 25 * e_i + 40 * s_i + 5 * w_i)
    return f"{demo_root},tess={root}"


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 220.0, amp: float = 0.5,
         channels: int = 1) -> np.ndarray:
    """A harmonic tone with a little vibrato: speech-like enough for features to be non-trivial."""
    t = np.arange(int(seconds * sr)) / sr
    f = freq * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 6)) * amp / 2
    y = y.astype(np.float32)
    if channels > 1:
        y = np.stack([y * (1 - 0.2 * c) for c in range(channels)], axis=1)
    return y


def write_clip(path: Path, seconds: float = 1.0, sr: int = 16000, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = kwargs.pop("subtype", None)
    fmt = kwargs.pop("format", None)
    sf.write(path, tone(seconds, sr, **kwargs), sr, subtype=subtype, format=fmt)
    return path


def noise_clip(path: Path, sr: int = 16000, seconds: float = 0.3) -> Path:
    """A short burst of quiet noise, seeded by the path: enough for a readable header and a
    duration (corpus adapter and split tests)."""
    import zlib

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))
    sf.write(path, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr)
    return path


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    """An empty models folder (SER_MODELS_DIR) for one test."""
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("SER_MODELS_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> list:
    """Six fluent synthetic utterances at 16 kHz (`predict_helpers.utterances`), shared by
    the voice tests; a module may define its own."""
    from predict_helpers import utterances

    return utterances(tmp_path_factory.mktemp("speech") / "corpus", n=6)


@pytest.fixture()
def every_core():
    """Let the processes this test starts use every core of the machine, even when an
    xdist worker keeps the test itself to a share (for tests that need a process pool)."""
    if not hasattr(os, "sched_setaffinity") or not _ALL_CORES:
        yield
        return
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _ALL_CORES)
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


def crema_with_votes(root: Path) -> Path:
    """A small CREMA-D-named corpus (6 actors × 6 emotions × 2 sentences) with the raters'
    summaryTable.csv: every sad clip was voted neutral, the rest as meant."""
    names = []
    for a_i, actor in enumerate(range(1001, 1007)):
        for e_i, emo in enumerate(("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")):
            for s_i, sentence in enumerate(("DFA", "IEO")):
                name = f"{actor}_{sentence}_{emo}_XX"
                write_clip(root / "AudioWAV" / f"{name}.wav", 0.6, 16000,
                           freq=150 + 30 * e_i + 10 * a_i + 5 * s_i)
                names.append(name)
    vote = {"ANG": "A", "DIS": "D", "FEA": "F", "HAP": "H", "NEU": "N", "SAD": "N"}
    import pandas as pd

    pd.DataFrame({"FileName": names, "VoiceVote": [vote[n.split("_")[2]] for n in names],
                  "VoiceLevel": 50.0}).to_csv(root / "summaryTable.csv")
    return root
