"""The abuse corpus: every kind of bad or borderline audio a public Predict page meets.

`make_corpus(folder)` writes the files and returns ``{file name: expectation}`` where the
expectation is ``"refused"`` (a clear `AudioError`), ``"warned"`` (scored, with a quality
warning) or ``"ok"``.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf


def wav_with_rate(rate: int, n: int = 16000, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV whose header claims ``rate`` Hz (any 32-bit value)."""
    t = np.arange(n * channels)
    data = (0.3 * np.sin(t * 0.05) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate & 0xFFFFFFFF,
                      (rate * 2 * channels) & 0xFFFFFFFF, 2 * channels, 16)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
            + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _wav(y: np.ndarray, sr: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, subtype=subtype, format=fmt)
    return buf.getvalue()


def _tone(seconds: float, sr: int = 16000, amp: float = 0.4) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
            ).astype(np.float32)


def make_corpus(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    good = _wav(_tone(1.5), 16000)
    y = _tone(1.0)
    loud = _tone(1.5) * 50  # float samples up to ±20
    nan = _tone(1.0)
    nan[100] = np.nan
    files: dict[str, tuple[bytes, str]] = {
        "empty.wav": (b"", "refused"),
        "garbage.wav": (b"\x00\x01garbage" * 500, "refused"),
        "text.wav": (b"hello, I am not audio\n" * 20, "refused"),
        "rate-0.wav": (wav_with_rate(0), "refused"),
        "rate-ffffffff.wav": (wav_with_rate(0xFFFFFFFF), "refused"),
        "rate-2e9.wav": (wav_with_rate(2_000_000_000), "refused"),
        "rate-1.wav": (wav_with_rate(1), "refused"),
        "truncated.wav": (good[: len(good) // 3], "refused"),
        "nan.wav": (_wav(nan, 16000, "FLOAT"), "refused"),
        "too-long.wav": (_wav(np.zeros(601 * 1000, np.float32), 1000, "PCM_U8"), "refused"),
        "fake.m4a": (b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 2000, "refused"),
        "silence.wav": (_wav(np.zeros(16000, np.float32), 16000), "warned"),
        # a stray click of a record button: refused, not given a verdict
        "one-sample.wav": (_wav(np.array([0.5], np.float32), 16000), "refused"),
        "50ms.wav": (_wav(_tone(0.05), 16000), "refused"),
        "300ms.wav": (_wav(_tone(0.3), 16000), "warned"),  # a word: scored, called short
        "opposite-phase.wav": (_wav(np.stack([y, -y], axis=1), 16000), "warned"),
        "float-20.wav": (_wav(loud, 16000, "FLOAT"), "warned"),
        "good.wav": (good, "ok"),
        "wav-named.mp3": (good, "ok"),
        "good.flac": (_wav(_tone(1.5), 16000, "PCM_16", "FLAC"), "ok"),
        "good.aiff": (_wav(_tone(1.5), 16000, "PCM_16", "AIFF"), "ok"),
        "eight-channels.wav": (_wav(np.tile(_tone(1.2)[:, None], (1, 8)), 16000), "ok"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: kind for name, (_, kind) in files.items()}
