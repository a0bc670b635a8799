"""Recordings as phones and browsers save them: M4A/AAC voice memos, raw AAC, MP4, WebM/Opus.

libsndfile reads none of these; they are decoded with PyAV (FFmpeg's decoders, shipped in
its wheel), so they work on a machine without ffmpeg. Every file here is written by the
test with PyAV's own encoders.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser import audio
from ser.audio import AudioError

av = pytest.importorskip("av")
REPO = Path(__file__).resolve().parent.parent

#: (container, codec, extension, sample rate)
PHONE = [("mp4", "aac", "m4a", 44100), ("mp4", "aac", "mp4", 16000),
         ("adts", "aac", "aac", 48000), ("webm", "libopus", "webm", 48000)]


def encode(path: Path, seconds: float, rate: int, *, container="mp4", codec="aac",
           channels=1, faststart=False) -> Path:
    """A 220 Hz tone (0.3 of full scale) encoded as ``container``/``codec``."""
    layout = "stereo" if channels == 2 else "mono"
    opts = {"movflags": "faststart"} if faststart else {}
    n = int(seconds * rate)
    y = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / rate)).astype(np.float32)
    with av.open(str(path), "w", format=container, options=opts) as c:
        s = c.add_stream(codec, rate=rate)
        s.layout = layout
        step = s.codec_context.frame_size or 1024
        for i in range(0, n, step):
            block = np.repeat(y[None, i:i + step], channels, axis=0)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp",
                                               layout=layout)
            frame.sample_rate = rate
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


@pytest.mark.parametrize("container, codec, ext, rate", PHONE, ids=[p[2] for p in PHONE])
def test_phone_and_browser_recordings_decode(tmp_path, container, codec, ext, rate):
    path = encode(tmp_path / f"memo.{ext}", 2.0, rate, container=container, codec=codec)
    assert ext in audio.accepted_formats()  # the uploader offers it
    meta = audio.info(path)
    assert meta.sample_rate == rate and meta.channels == 1
    assert abs(meta.duration_s - 2.0) < 0.2
    y, sr = audio.load_audio(path, sr=16000)
    assert sr == 16000 and y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / sr - 2.0) < 0.2  # codec priming adds a few ms, no more
    assert 0.2 < np.abs(y).max() <= 1.0
    # the same bytes uploaded (no file name) decode the same way
    y2, _ = audio.load_audio(path.read_bytes(), sr=16000)
    np.testing.assert_allclose(y, y2)


def test_a_stereo_voice_memo_is_mixed_to_mono(tmp_path):
    path = encode(tmp_path / "memo.m4a", 1.0, 44100, channels=2)
    assert audio.info(path).channels == 2
    y, sr = audio.load_audio(path)
    assert sr == 44100 and y.ndim == 1 and 0.2 < np.abs(y).max() <= 1.0
    both, _ = audio.load_audio(path, mono=False)
    assert both.shape[0] == 2


def test_a_long_memo_is_refused_before_decoding(tmp_path):
    path = encode(tmp_path / "long.m4a", 3.0, 16000)
    with pytest.raises(AudioError, match="lasts .* the limit is"):
        audio.decode(path, max_seconds=2.0)


def test_a_cut_off_memo_is_named_as_such(tmp_path):
    """A voice memo whose upload was cut short: with its index at the front (faststart)
    the header promises more than the samples hold; with the index at the end nothing is
    left to read. Both get a message naming the problem, none of FFmpeg's error codes."""
    whole = encode(tmp_path / "front.m4a", 6.0, 44100, faststart=True).read_bytes()
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(AudioError, match="cut.m4a is damaged or truncated") as err:
        audio.load_audio(cut)
    assert "6.0 s its header announces" in str(err.value)
    tail = encode(tmp_path / "end.m4a", 6.0, 44100).read_bytes()
    cut.write_bytes(tail[:5000])
    with pytest.raises(AudioError, match="cut.m4a is not audio that SER Studio can decode") as e2:
        audio.load_audio(cut)
    for text in (str(err.value), str(e2.value)):
        assert "Errno" not in text and "<none>" not in text


def test_non_audio_with_a_phone_extension_is_refused(tmp_path):
    p = tmp_path / "memo.m4a"
    p.write_bytes(b"this is a text file, not a recording\n" * 50)
    with pytest.raises(AudioError, match="memo.m4a is not audio .* Use WAV.*M4A"):
        audio.load_audio(p)


@pytest.mark.slow
def test_the_command_line_scores_a_voice_memo(tmp_path):
    """End to end through the CLI (a real subprocess, a shipped model)."""
    path = encode(tmp_path / "memo.m4a", 2.5, 44100)
    out = subprocess.run([sys.executable, "-m", "ser", "predict", "ser2d.crema-si", str(path)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "memo.m4a" in out.stdout and "Traceback" not in out.stderr
