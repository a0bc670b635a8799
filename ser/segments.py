"""Find the stretches of speech in a clip with Silero VAD, and cut them to model-sized parts.

The emotion models were trained on CREMA-D clips of 1.3–5 s that hold one sentence with
little silence around it. A long recording (a call, an interview) has to be cut into
pieces like that before it is scored, and silence must not be scored at all: a model
asked about a pause still answers with an emotion. This module finds the speech with a
neural voice activity detector and returns segments ready to be scored one by one.

The detector
------------
`Silero VAD <https://github.com/snakers4/silero-vad>`_ (MIT licence), from the PyPI
package ``silero-vad`` (>= 6.2.3, the first release whose hard dependencies are only
``torch`` and ``packaging``: earlier ones also require ``torchaudio``). The package ships
its weights, so nothing is downloaded at run time. We load the packaged TorchScript file
(``silero_vad/data/silero_vad.jit``) with :func:`torch.jit.load` ourselves instead of
calling ``silero_vad.load_silero_vad``, because importing ``silero_vad`` runs
``torch.set_num_threads(1)`` for the whole process, which would slow down every other
model in the app. The TorchScript file holds both the 16 kHz and the 8 kHz network and
emits one speech probability per 32 ms frame (512 samples at 16 kHz, 256 at 8 kHz).

There is deliberately no fallback (energy threshold or similar): if the detector cannot
be loaded, :class:`SegmentationError` says why, rather than silently segmenting worse.

From probabilities to segments
------------------------------
1. Hysteresis: a segment opens on a frame with probability ``>= threshold`` and closes
   on the first frame below ``neg_threshold`` (default ``threshold - 0.15``), so a
   probability wobbling around the threshold inside a word does not chop it up.
2. Pauses shorter than ``min_silence_s`` are bridged (a breath inside a sentence).
3. Segments shorter than ``min_speech_s`` are dropped (clicks, coughs).
4. Every segment is padded by ``pad_s`` each side (never into a neighbour, never past
   the clip), so word onsets and final consonants are kept.

   Silero's probability rises within a frame or two of a speech onset but decays more
   slowly after speech stops, so segment ends run late. Measured without padding on
   ~120 fluent utterances of the synthetic voice of ``ser.corpora.demo`` (truth: frame
   energy above -45 dBFS): starts median 0.01 s early, 95 % within 0.06 s, worst
   0.18 s late; ends median 0.09 s late, 95 % within 0.13 s, worst 0.20 s late.
5. Segments longer than ``max_segment_s`` are split into the fewest near-equal parts
   that fit, the cuts placed jointly at the quietest, least speech-like frames near the
   equal split points (see :func:`_split_points`).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "FRAME_SECONDS",
    "Segment",
    "SegmentationError",
    "fixed_segments",
    "frame_speech_probs",
    "slice_segments",
    "speech_ratio",
    "speech_segments",
]

#: Duration of one VAD frame: 512 samples at 16 kHz (and 256 at 8 kHz).
FRAME_SECONDS = 0.032
_VAD_SR = 16000
_NATIVE_8K = 8000
_MODEL_FILE = "silero_vad.jit"
#: How far (as a fraction of the equal part length) a cut may move to find a quiet frame.
_CUT_SLACK = 0.25

_model = None
# One model per process, used only from one dedicated worker thread: the TorchScript
# module keeps recurrent state between frames, so two Streamlit sessions must never run
# it at the same time, and the worker can run torch single-threaded without touching the
# rest of the app (see _worker_init). The lock only guards creating the worker.
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


class SegmentationError(RuntimeError):
    """The voice activity detector could not be loaded; the message names the problem."""


@dataclass(frozen=True)
class Segment:
    """A stretch of a clip, in seconds from its start."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        return {"start_s": self.start_s, "end_s": self.end_s, "duration_s": self.duration_s}


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


def _model_path() -> Path:
    # find_spec locates the package without executing its __init__ (which would change
    # torch's global thread count, see the module docstring).
    try:
        spec = importlib.util.find_spec("silero_vad")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise SegmentationError(
            "Speech segmentation needs the 'silero-vad' package, which is not installed. "
            "Install it with: pip install 'silero-vad>=6.2.3,<7'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / _MODEL_FILE
    if not path.is_file():
        raise SegmentationError(
            f"The installed 'silero-vad' package has no model file at {path}; "
            "reinstall it with: pip install --force-reinstall --no-deps 'silero-vad>=6.2.3,<7'"
        )
    return path


def _load_model():
    """Load the TorchScript VAD once per process (called on the VAD worker thread only)."""
    global _model
    if _model is not None:
        return _model
    path = _model_path()
    try:
        import torch
    except ImportError as err:
        raise SegmentationError(f"Speech segmentation needs PyTorch: {err}") from None
    try:
        model = torch.jit.load(str(path), map_location="cpu")
        model.eval()
    except Exception as err:  # noqa: BLE001 - any load failure has the same remedy
        raise SegmentationError(
            f"Could not load the Silero VAD model from {path}: {err}"
        ) from None
    _model = model
    return model


def _check(y: np.ndarray, sr: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got shape {y.shape}")
    if int(sr) != sr or sr <= 0:
        raise ValueError(f"sample rate must be a positive integer, got {sr!r}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise ValueError("audio contains NaN or infinite samples")
    return y


def _n_frames(n_samples: int, sr: int) -> int:
    # Frames are 32 ms = 4/125 s; a last partial frame counts (the model sees it
    # zero-padded). Integer arithmetic, because e.g. 0.032 * 44100 is not exact in floats.
    return -(-125 * n_samples // (4 * sr))


def _vad_input(y: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """Audio at a rate the network has weights for: 8 kHz as is, all else at 16 kHz."""
    if sr in (_NATIVE_8K, _VAD_SR):
        return y, sr
    from ser.audio import resample

    return resample(y, sr, _VAD_SR), _VAD_SR


def _worker_init() -> None:
    try:
        import torch
    except ImportError:
        return  # _load_model reports the missing torch as a SegmentationError

    # The network is tiny and runs one 32 ms frame after another, so intra-op threads
    # only add synchronisation: measured on this project's 2-core machine under load, a
    # 60 s clip took 6-10 s with torch's default 2 threads and 0.5-0.8 s with 1. With
    # ATen's OpenMP backend (the one torch 2.13 CPU on Linux reports) the setting is per
    # thread, so only this worker is affected; on other backends it would be
    # process-wide, so there it is left alone.
    if "parallel backend: OpenMP" in torch.__config__.parallel_info():
        torch.set_num_threads(1)


def _run_vad(x: np.ndarray, sr: int) -> np.ndarray:
    """Frame probabilities of ``x`` (a whole number of frames); runs on the VAD thread."""
    import torch

    model = _load_model()
    with torch.inference_mode():
        # audio_forward resets the recurrent state and runs the frames in order inside
        # TorchScript (no Python loop per frame).
        out = model.audio_forward(torch.from_numpy(x)[None, :], sr)
    return out.numpy().reshape(-1).astype(np.float32)


def _probs(y: np.ndarray, sr: int) -> np.ndarray:
    """Speech probability of every 32 ms frame of (checked, non-empty) ``y``."""
    global _executor
    n = _n_frames(len(y), sr)
    if not np.any(y):
        # Digital silence: no need to wake the model for it.
        return np.zeros(n, dtype=np.float32)
    x, vad_sr = _vad_input(y, sr)
    # Zero-pad to whole frames: the model refuses inputs shorter than one frame.
    frame = int(FRAME_SECONDS * vad_sr)
    x = np.pad(x, (0, -len(x) % frame))
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ser-vad",
                                           initializer=_worker_init)
        future = _executor.submit(_run_vad, x, vad_sr)
    probs = future.result()
    # Resampling can change the length by a sample; the frame grid follows the input.
    if len(probs) < n:
        probs = np.pad(probs, (0, n - len(probs)), mode="edge")
    return probs[:n]


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def frame_speech_probs(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Speech probability of every 32 ms frame, for drawing or for :func:`speech_segments`.

    Parameters
    ----------
    y : np.ndarray
        Mono samples, shape ``(samples,)``, any sample rate.
    sr : int
        Sample rate of ``y`` in Hz. 8 kHz audio is scored by Silero's 8 kHz network;
        every other rate is resampled to 16 kHz first.

    Returns
    -------
    times : np.ndarray, float64, shape ``(frames,)``
        Centre of each frame in seconds.
    probs : np.ndarray, float32, shape ``(frames,)``
        Speech probability in [0, 1]. Empty input gives two empty arrays.

    Raises
    ------
    SegmentationError
        If the Silero VAD model cannot be loaded.
    ValueError
        If ``y`` is not 1-D, holds NaN/inf, or ``sr`` is not a positive integer.
    """
    y = _check(y, sr)
    probs = _probs(y, int(sr)) if len(y) else np.zeros(0, dtype=np.float32)
    times = (np.arange(len(probs)) + 0.5) * FRAME_SECONDS
    return times, probs


def speech_ratio(y: np.ndarray, sr: int, *, threshold: float = 0.5) -> float:
    """Fraction of 32 ms frames whose speech probability is at least ``threshold``.

    A quick "is there any speech in this?" check (0.0 for empty input).
    """
    _, probs = frame_speech_probs(y, sr)
    return float(np.mean(probs >= threshold)) if len(probs) else 0.0


def speech_segments(
    y: np.ndarray,
    sr: int,
    *,
    threshold: float = 0.5,
    neg_threshold: float | None = None,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.3,
    pad_s: float = 0.1,
    max_segment_s: float | None = 5.0,
    min_segment_s: float = 1.0,
    probs: np.ndarray | None = None,
) -> list[Segment]:
    """Find the speech in a clip and return it as segments ready to be scored one by one.

    Parameters
    ----------
    y : np.ndarray
        Mono samples, shape ``(samples,)``, any sample rate (float32 preferred).
    sr : int
        Sample rate of ``y`` in Hz.
    threshold : float
        Speech probability at or above which a frame opens a segment.
    neg_threshold : float, optional
        Probability below which a frame closes an open segment; default
        ``max(threshold - 0.15, 0.01)``.
    min_speech_s : float
        Speech stretches shorter than this (before padding) are dropped.
    min_silence_s : float
        Pauses shorter than this are merged into the surrounding speech.
    pad_s : float
        Seconds added before and after each segment. Padding never reaches into a
        neighbouring segment (it stops half-way across the pause) or past the clip.
    max_segment_s : float or None
        Segments longer than this are split into ``ceil(length / max_segment_s)``
        near-equal parts, each cut at a quiet, unspeech-like frame within ±25 % of a
        part's length of its equal split point (parts thus last 0.5–1.5× the equal
        length, and never more than ``max_segment_s``). ``None`` never splits.
    min_segment_s : float
        The shortest part a split may create; at most ``max_segment_s / 2``. It does not
        affect unsplit segments (``min_speech_s`` does).
    probs : np.ndarray, optional
        Frame probabilities from :func:`frame_speech_probs` for this same ``y`` and
        ``sr``, to avoid running the detector twice when the app also draws them.

    Returns
    -------
    list of Segment
        In time order, non-overlapping, within ``[0, len(y) / sr]``. Empty for empty,
        silent or speech-free input.

    Raises
    ------
    SegmentationError
        If the Silero VAD model cannot be loaded.
    ValueError
        For bad audio (not 1-D, NaN/inf) or inconsistent options.

    Examples
    --------
    >>> y, sr = ser.audio.load_audio("interview.wav")  # doctest: +SKIP
    >>> [(s.start_s, s.end_s) for s in speech_segments(y, sr)]  # doctest: +SKIP
    [(0.42, 3.9), (5.1, 9.87), (9.87, 14.3)]
    """
    y = _check(y, sr)
    sr = int(sr)
    neg = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
    if not 0.0 < threshold <= 1.0 or not 0.0 <= neg <= threshold:
        raise ValueError("need 0 < threshold <= 1 and 0 <= neg_threshold <= threshold")
    if min(min_speech_s, min_silence_s, pad_s, min_segment_s) < 0:
        raise ValueError("durations must not be negative")
    if max_segment_s is not None:
        if max_segment_s <= 0:
            raise ValueError("max_segment_s must be positive (or None)")
        if min_segment_s > max_segment_s / 2:
            raise ValueError("min_segment_s must be at most max_segment_s / 2, otherwise "
                             "some lengths cannot be split into parts between the two")
    if not len(y):
        return []
    if probs is None:
        probs = _probs(y, sr)
    else:
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        if len(probs) != _n_frames(len(y), sr):
            raise ValueError(f"probs has {len(probs)} frames but this audio has "
                             f"{_n_frames(len(y), sr)}; pass frame_speech_probs(y, sr)[1]")

    duration = len(y) / sr
    regions = _hysteresis(probs, threshold, neg)
    regions = _bridge(regions, round(min_silence_s / FRAME_SECONDS))
    # Frame edges in seconds; the last frame may be partial, so clip to the clip's end.
    spans = [(a * FRAME_SECONDS, min(b * FRAME_SECONDS, duration)) for a, b in regions]
    spans = [(a, b) for a, b in spans if b - a >= min_speech_s - 1e-9]
    spans = _pad(spans, pad_s, duration)

    out: list[Segment] = []
    for a, b in spans:
        edges = [a, b]
        if max_segment_s is not None and b - a > max_segment_s:
            cost = _cut_cost(y, sr, probs, a, b)
            edges = [a, *_split_points(a, b, max_segment_s, min_segment_s, cost), b]
        # Rounded to 0.1 ms (far below the 32 ms frame) so times print cleanly; parts of
        # a split segment still share their boundaries exactly.
        edges = [round(e, 4) for e in edges]
        out.extend(Segment(s, e) for s, e in zip(edges[:-1], edges[1:]))
    return out


def fixed_segments(duration_s: float, max_segment_s: float) -> list[Segment]:
    """The whole clip cut into the fewest equal parts no longer than ``max_segment_s``,
    without looking for speech (for when voice activity detection is switched off)."""
    if max_segment_s <= 0:
        raise ValueError("max_segment_s must be positive")
    if duration_s <= 0:
        return []
    k = max(1, math.ceil(duration_s / max_segment_s - 1e-9))
    edges = [round(duration_s * i / k, 4) for i in range(k + 1)]
    edges[-1] = duration_s
    return [Segment(a, b) for a, b in zip(edges[:-1], edges[1:])]


def slice_segments(y: np.ndarray, sr: int, segments: list[Segment]) -> list[np.ndarray]:
    """The samples of each segment (views into ``y``), in order."""
    n = len(y)
    return [y[max(0, round(s.start_s * sr)):min(n, round(s.end_s * sr))] for s in segments]


# --------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------


def _hysteresis(probs: np.ndarray, on: float, off: float) -> list[tuple[int, int]]:
    """Half-open frame ranges [start, end) of speech under two-threshold hysteresis."""
    regions = []
    start = None
    for i, p in enumerate(probs.tolist()):
        if start is None:
            if p >= on:
                start = i
        elif p < off:
            regions.append((start, i))
            start = None
    if start is not None:
        regions.append((start, len(probs)))
    return regions


def _bridge(regions: list[tuple[int, int]], min_gap: int) -> list[tuple[int, int]]:
    """Merge regions separated by fewer than ``min_gap`` frames."""
    merged: list[tuple[int, int]] = []
    for a, b in regions:
        if merged and a - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _pad(spans: list[tuple[float, float]], pad: float, duration: float
         ) -> list[tuple[float, float]]:
    """Widen each span by ``pad``, stopping half-way into a pause shared with a neighbour."""
    out = []
    for i, (a, b) in enumerate(spans):
        left = pad if i == 0 else min(pad, (a - spans[i - 1][1]) / 2)
        right = pad if i == len(spans) - 1 else min(pad, (spans[i + 1][0] - b) / 2)
        out.append((max(0.0, a - left), min(duration, b + right)))
    return out


def _cut_cost(y: np.ndarray, sr: int, probs: np.ndarray, a: float, b: float) -> np.ndarray:
    """Per-frame cost of cutting inside [a, b): speech probability + relative loudness.

    Both terms are in [0, 1]. The probability finds pauses the VAD saw; the loudness
    (frame energy in dB, scaled to the segment's own range) separates frames the VAD
    rates equally, e.g. the dip between two syllables in continuous speech.
    """
    hop = FRAME_SECONDS * sr
    f0, f1 = int(a / FRAME_SECONDS), min(math.ceil(b / FRAME_SECONDS), len(probs))
    energy = np.empty(f1 - f0)
    for k, f in enumerate(range(f0, f1)):
        frame = y[int(f * hop):int((f + 1) * hop)]
        energy[k] = np.mean(frame.astype(np.float64) ** 2) if len(frame) else 0.0
    db = 10 * np.log10(energy + 1e-10)
    span = db.max() - db.min() if len(db) else 0.0
    loud = (db - db.min()) / span if span > 0 else np.zeros_like(db)
    cost = np.full(len(probs), np.inf)
    cost[f0:f1] = probs[f0:f1] + loud
    return cost


def _split_points(a: float, b: float, max_len: float, min_len: float, cost: np.ndarray
                  ) -> list[float]:
    """Cut times that split [a, b] into ``k = ceil((b - a) / max_len)`` bounded parts.

    Cut ``j`` may sit anywhere within ±25 % of a part length of the equal split point
    ``a + j (b - a) / k``: on a frame centre, or on the equal split point itself. The
    cuts are chosen together (dynamic programming over the candidates of consecutive
    cuts) to minimise the summed ``cost`` subject to every part lasting between
    ``min_len`` and ``max_len``. Choosing them one at a time can paint the last cuts into
    a corner where only a loud frame fits. The equal split itself always satisfies the
    bounds (``min_len <= max_len / 2 <= (b - a) / k <= max_len``), so a solution exists.
    """
    k = math.ceil((b - a) / max_len - 1e-9)
    if k <= 1:
        return []
    part = (b - a) / k
    slack = _CUT_SLACK * part
    centres = (np.arange(len(cost)) + 0.5) * FRAME_SECONDS
    finite = np.isfinite(cost)
    eps = 1e-9

    prev_t = np.array([a])
    prev_total = np.array([0.0])
    back: list[tuple[np.ndarray, np.ndarray]] = []
    for j in range(1, k):
        ideal = a + j * part
        sel = np.flatnonzero(finite & (np.abs(centres - ideal) <= slack))
        f = min(int(ideal / FRAME_SECONDS), len(cost) - 1)
        t = np.append(centres[sel], ideal)
        # A tiny pull towards the equal split breaks ties between equally cheap frames.
        c = np.append(cost[sel], cost[f] if finite[f] else 2.0) + 1e-3 * np.abs(t - ideal) / slack
        gap = t[:, None] - prev_t[None, :]
        ok = (gap >= min_len - eps) & (gap <= max_len + eps)
        total = np.where(ok, prev_total[None, :], np.inf)
        arg = total.argmin(axis=1)  # best predecessor of each candidate
        back.append((t, arg))
        prev_t, prev_total = t, total[np.arange(len(t)), arg] + c
    last = b - prev_t
    final = np.where((last >= min_len - eps) & (last <= max_len + eps), prev_total, np.inf)
    i = int(np.argmin(final))
    cuts = []
    for t, arg in reversed(back):
        cuts.append(float(t[i]))
        i = int(arg[i])
    return cuts[::-1]
