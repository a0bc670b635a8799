"""Decode audio from a path, bytes or a file-like object into mono float32.

`load` is the single way audio enters SER Studio: the corpus readers, the feature code,
the Predict page and the CLI all call it, so every input gets the same checks and the same
user-facing error messages.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf

from ser import config

AudioSource = Union[str, Path, bytes, bytearray, BinaryIO]


class AudioError(ValueError):
    """The input could not be used as audio; the message says why, in user terms."""


@dataclass(frozen=True)
class AudioInfo:
    """What the container says about a clip, before any conversion."""

    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    format: str
    subtype: str

    def as_dict(self) -> dict:
        return asdict(self)


def _name_of(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    return getattr(source, "name", None) or "the uploaded data"


def _read_bytes(source: AudioSource) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{path} does not exist.")
        if path.is_dir():
            raise AudioError(f"{path} is a folder, not an audio file.")
        return path.read_bytes()
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            try:
                source.seek(0)
            except (OSError, ValueError):
                pass
        data = source.read()
        if isinstance(data, str):
            raise AudioError("Expected binary audio data but got text.")
        return bytes(data)
    raise AudioError(f"Cannot read audio from an object of type {type(source).__name__}.")


def _check_wav_complete(data: bytes, name: str) -> None:
    """Reject a RIFF/WAVE file whose data chunk is shorter than its header declares.

    libsndfile quietly decodes whatever samples survive in a cut-off WAV; a user who
    uploads half a file should be told instead of silently scoring half a clip.
    """
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return
    fmt = "<I" if data[:4] == b"RIFF" else ">I"
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos:pos + 4]
        (size,) = struct.unpack(fmt, data[pos + 4:pos + 8])
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mark streamed WAVs whose size was never filled in.
            if size not in (0, 0xFFFFFFFF) and pos + 8 + size > len(data):
                have = len(data) - pos - 8
                raise AudioError(
                    f"{name} is truncated: its header announces {size:,} bytes of audio but "
                    f"only {max(have, 0):,} are present. Re-export or re-upload the file."
                )
            return
        pos += 8 + size + (size & 1)


def _open(data: bytes, name: str) -> sf.SoundFile:
    try:
        return sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(
            f"{name} is not audio that SER Studio can decode ({err}). "
            "Use WAV, FLAC, OGG/Opus or MP3."
        ) from None


def _decode_fallback(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode formats libsndfile lacks (e.g. m4a) through librosa/audioread when possible."""
    import tempfile
    import warnings

    import librosa

    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix or ".bin") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, sr = librosa.load(tmp.name, sr=None, mono=False)
        except Exception:  # noqa: BLE001 - any decoder failure means "not decodable"
            raise AudioError(
                f"{name} is not audio that SER Studio can decode. "
                "Use WAV, FLAC, OGG/Opus or MP3."
            ) from None
    y = np.asarray(y, dtype=np.float32)
    return (y if y.ndim == 2 else y[None, :]).T, int(sr)


def info(source: AudioSource) -> AudioInfo:
    """Describe a clip's container (rate, channels, length) without decoding it all."""
    data = _read_bytes(source)
    name = _name_of(source)
    if not data:
        raise AudioError(f"{name} is empty (0 bytes).")
    with _open(data, name) as f:
        return AudioInfo(f.samplerate, f.channels, f.frames, f.frames / f.samplerate,
                         f.format, f.subtype)


def load_audio(
    source: AudioSource,
    sr: int | None = None,
    *,
    max_seconds: float = config.MAX_AUDIO_SECONDS,
    mono: bool = True,
) -> tuple[np.ndarray, int]:
    """Decode audio into float32 samples in [-1, 1].

    Parameters
    ----------
    source : path, bytes or binary file-like
        WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3 or anything else libsndfile (or, failing
        that, librosa's fallback decoder) reads.
    sr : int, optional
        Target sample rate in Hz; ``None`` keeps the file's own rate.
    max_seconds : float
        Longer inputs are refused (they would tie up the app); default 10 minutes.
    mono : bool
        Average channels into one (default). With ``False`` the result is
        ``(channels, samples)``.

    Returns
    -------
    y : np.ndarray, float32, shape ``(samples,)`` (or ``(channels, samples)``)
    sr : int, the sample rate of ``y``

    Raises
    ------
    AudioError
        Empty, not audio, truncated or corrupt, zero samples, NaN/inf samples, too long.
        Silence is valid audio and is returned as zeros.

    Examples
    --------
    >>> y, sr = load("1001_DFA_ANG_XX.wav", sr=22050)  # doctest: +SKIP
    """
    data = _read_bytes(source)
    name = _name_of(source)
    if not data:
        raise AudioError(f"{name} is empty (0 bytes).")
    _check_wav_complete(data, name)
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        y2d, native_sr = _decode_fallback(data, name)
    else:
        with f:
            native_sr = f.samplerate
            if f.frames and f.frames / native_sr > max_seconds:
                raise AudioError(_too_long(name, f.frames / native_sr, max_seconds))
            try:
                y2d = f.read(dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioError(f"{name} is corrupt or truncated ({err}).") from None
    if y2d.shape[0] == 0:
        raise AudioError(f"{name} contains no audio samples.")
    if y2d.shape[0] / native_sr > max_seconds:
        raise AudioError(_too_long(name, y2d.shape[0] / native_sr, max_seconds))
    if not np.isfinite(y2d).all():
        raise AudioError(f"{name} contains invalid samples (NaN or infinity).")
    y = y2d.mean(axis=1) if mono else y2d.T
    y = np.ascontiguousarray(y, dtype=np.float32)
    if sr is not None and int(sr) != native_sr:
        y = resample(y, native_sr, int(sr))
        native_sr = int(sr)
    return y, int(native_sr)


def _too_long(name: str, seconds: float, limit: float) -> str:
    return (f"{name} lasts {seconds / 60:.1f} min; the limit is {limit / 60:.1f} min. "
            "Trim it to the part you want analysed.")


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with soxr's high-quality filter (librosa's default), float32 out."""
    import soxr

    if orig_sr == target_sr:
        return y.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(y.T, orig_sr, target_sr, quality="HQ").T, dtype=np.float32)


@dataclass(frozen=True)
class QualityReport:
    """Facts about a decoded clip that decide whether a prediction can be trusted."""

    duration_s: float
    sample_rate: int
    channels: int
    peak: float
    rms_dbfs: float
    clipped_fraction: float
    silent_fraction: float
    warnings: tuple[str, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def quality_report(y: np.ndarray, sr: int, channels: int = 1) -> QualityReport:
    """Check level, clipping and silence of mono samples ``y`` at ``sr`` Hz."""
    y = np.asarray(y, dtype=np.float32)
    duration = len(y) / sr if sr else 0.0
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) if len(y) else 0.0
    rms_db = 20 * math.log10(rms) if rms > 0 else -math.inf
    clipped = float(np.mean(np.abs(y) >= 0.999)) if len(y) else 0.0
    frame = max(1, int(0.02 * sr))
    n = len(y) // frame
    if n:
        frame_rms = np.sqrt(np.mean(y[: n * frame].reshape(n, frame) ** 2, axis=1))
        silent = float(np.mean(frame_rms < 10 ** (-50 / 20)))
    else:
        silent = 1.0
    notes = []
    if peak == 0.0:
        notes.append("The clip is digital silence: every model will only be guessing.")
    elif rms_db < -45:
        notes.append(f"The clip is very quiet ({rms_db:.0f} dBFS); predictions may be unreliable.")
    if clipped > 0.001:
        notes.append(f"{clipped:.1%} of samples are clipped (at full scale); loud distortion "
                     "can look like anger to a model.")
    if duration < 1.0:
        notes.append(f"The clip is short ({duration:.2f} s); CREMA-D clips last 1.3–5 s.")
    if peak > 0 and silent > 0.8:
        notes.append(f"{silent:.0%} of the clip is near-silent.")
    if sr < 16000:
        notes.append(f"Low sample rate ({sr} Hz): frequencies above {sr // 2} Hz are missing.")
    return QualityReport(duration, int(sr), int(channels), peak, rms_db, clipped, silent,
                         tuple(notes))


# Temporary alias while the corpus adapters move over; removed before landing.
load = load_audio
