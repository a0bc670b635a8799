"""Decode audio from a path, bytes or a file-like object into mono float32.

`load` is the single way audio enters SER Studio: the corpus readers, the feature code,
the Predict page and the CLI all call it, so every input gets the same checks and the same
user-facing error messages.
"""

from __future__ import annotations

import io
import math
import re
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


#: Sample rates a real recording can have; a header outside is damaged or hostile (0 Hz
#: divides by zero, 2·10⁹ Hz turns a second of audio into one sample).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
#: Containers libsndfile decodes itself (file-name extensions, lower case, no dot).
NATIVE_FORMATS = ("wav", "flac", "ogg", "opus", "mp3", "aiff", "aif")
#: Containers only the fallback decoder reads: PyAV (a requirement), or audioread with an
#: ffmpeg or GStreamer backend. M4A/AAC is what phones record voice memos in.
FALLBACK_FORMATS = ("m4a", "aac", "mp4", "webm", "wma")


def _pyav():
    """The PyAV module (FFmpeg's decoders in a wheel), or None when it is not installed."""
    try:
        import av
    except Exception:  # noqa: BLE001 - a broken optional decoder means "not available"
        return None
    return av


def fallback_available() -> bool:
    """True when compressed formats beyond libsndfile's (M4A, AAC, MP4, WebM, WMA) can be
    decoded here: PyAV is installed, or audioread has an ffmpeg or GStreamer backend."""
    if _pyav() is not None:
        return True
    try:
        import audioread

        return any(b.__name__ != "RawAudioFile" for b in audioread.available_backends())
    except Exception:  # noqa: BLE001 - a broken optional backend means "not available"
        return False


def accepted_formats() -> tuple[str, ...]:
    """The one list of formats SER Studio accepts on this machine: the uploader offers
    exactly these, and `load_audio` decodes exactly these (page and CLI alike)."""
    return NATIVE_FORMATS + (FALLBACK_FORMATS if fallback_available() else ())


def _formats_hint() -> str:
    return "Use " + ", ".join(f.upper() for f in accepted_formats()) + "."


def _check_rate(rate, name: str) -> int:
    if not isinstance(rate, (int, float)) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name} has a damaged header: it gives a sample rate of {rate:,} Hz"
                         f" (real recordings use {MIN_SAMPLE_RATE:,}–{MAX_SAMPLE_RATE:,} Hz). "
                         "Re-export the file." if isinstance(rate, (int, float)) else
                         f"{name} has a damaged header (no sample rate).")
    return int(rate)


def _clean(err: Exception) -> str:
    """A decoder's message without object addresses such as ``<_io.BytesIO object at
    0x7f…>``."""
    text = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the file", str(err))
    text = re.sub(r"\[Errno -?\d+\]\s*", "", text)  # FFmpeg's error numbers (PyAV)
    text = re.sub(r":\s*'<none>'", "", text)  # PyAV names an in-memory file '<none>'
    return text.strip()


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
    """Reject a RIFF/WAVE file whose data chunk is shorter than its header declares, or
    whose format chunk gives an impossible sample rate.

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
        if chunk_id == b"fmt " and pos + 16 <= len(data):
            # Checked here, before any decoder sees it: decoders divide by it.
            (rate,) = struct.unpack(fmt, data[pos + 12:pos + 16])
            _check_rate(rate, name)
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


def _not_decodable(name: str, err: Exception | None = None) -> AudioError:
    detail = f" ({_clean(err)})" if err is not None and _clean(err) else ""
    ext = Path(name).suffix.lower().lstrip(".")
    if ext in FALLBACK_FORMATS and not fallback_available():
        return AudioError(f"{name}: {ext.upper()} files cannot be decoded on this server "
                          f"(PyAV is not installed: pip install av). {_formats_hint()}")
    return AudioError(f"{name} is not audio that SER Studio can decode{detail}. "
                      f"{_formats_hint()}")


class _Fallback:
    """A file libsndfile cannot open (M4A/AAC from a phone, MP4, WebM, WMA), opened with
    PyAV (FFmpeg's decoders, shipped in its wheel) or, failing that, audioread: header facts
    first, samples only on request, so the duration is checked before anything is decoded."""

    def __init__(self, data: bytes, name: str):
        self.name = name
        self.data = data
        self.tmp = None
        self.format = Path(name).suffix.lstrip(".").upper()
        av = _pyav()
        err: Exception | None = None
        if av is not None:
            try:
                rate, self.channels, duration = self._probe_pyav(av)
                self.backend = "pyav"
            except AudioError:
                raise
            except Exception as e:  # noqa: BLE001 - try audioread before giving up
                err = e
        if av is None or err is not None:
            rate, self.channels, duration = self._probe_audioread(err)
            self.backend = "audioread"
        self.format = self.format or "?"
        try:
            self.samplerate = _check_rate(rate, name)
        except AudioError:
            self.close()
            raise
        self.duration_s = float(duration or 0.0)

    def _probe_pyav(self, av) -> tuple:
        with av.open(io.BytesIO(self.data)) as c:
            if not c.streams.audio:
                raise _not_decodable(self.name, ValueError("it holds no audio stream"))
            s = c.streams.audio[0]
            if s.duration and s.time_base:
                duration = float(s.duration * s.time_base)
            else:
                duration = c.duration / av.time_base if c.duration else 0.0
            names = c.format.name.split(",")
            self.format = self.format or ("MP4" if "mp4" in names else names[0].upper())
            cc = s.codec_context
            if not cc.channels:
                raise _not_decodable(self.name, ValueError("its audio stream has no channels"))
            return cc.sample_rate, cc.channels, duration

    def _probe_audioread(self, earlier: Exception | None) -> tuple:
        import tempfile

        self.tmp = tempfile.NamedTemporaryFile(suffix=Path(self.name).suffix or ".bin")
        self.tmp.write(self.data)
        self.tmp.flush()
        try:
            import audioread

            with audioread.audio_open(self.tmp.name) as f:
                return f.samplerate, f.channels, f.duration
        except ZeroDivisionError:  # the decoder divided by a sample rate of 0
            self.close()
            _check_rate(0, self.name)
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure: "not decodable"
            self.close()
            raise _not_decodable(self.name, earlier or err) from None

    def read(self, max_frames: int | None = None) -> np.ndarray:
        """``(frames, channels)`` float32. With PyAV, decoding stops soon after
        ``max_frames``, so a container that understates its length cannot fill the memory
        (the caller refuses what came back as too long)."""
        if self.backend == "pyav":
            try:
                return self._read_pyav(max_frames)
            except AudioError:
                raise
            except Exception as err:  # noqa: BLE001
                raise _not_decodable(self.name, err) from None
        import warnings

        import librosa

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y, _ = librosa.load(self.tmp.name, sr=None, mono=False)
        except Exception as err:  # noqa: BLE001
            raise _not_decodable(self.name, err) from None
        y = np.asarray(y, dtype=np.float32)
        return (y if y.ndim == 2 else y[None, :]).T

    def _read_pyav(self, max_frames: int | None) -> np.ndarray:
        av = _pyav()
        parts: list[np.ndarray] = []
        frames = 0
        with av.open(io.BytesIO(self.data)) as c:
            s = c.streams.audio[0]
            # planar float at the stream's own rate and layout: (channels, samples) blocks
            resampler = av.AudioResampler(format="fltp", layout=s.layout, rate=s.sample_rate)
            try:
                for packet_frame in c.decode(s):
                    for out in resampler.resample(packet_frame):
                        parts.append(out.to_ndarray())
                        frames += parts[-1].shape[1]
                    if max_frames is not None and frames > max_frames:
                        break
                else:
                    for out in resampler.resample(None):
                        parts.append(out.to_ndarray())
            except av.FFmpegError as err:  # the header was fine, the samples are not
                raise AudioError(
                    f"{self.name} is damaged or truncated: decoding failed after "
                    f"{frames / self.samplerate:.1f} s of the {self.duration_s:.1f} s its "
                    f"header announces ({_clean(err)}). Re-export or re-upload the file."
                ) from None
        if not parts:
            return np.zeros((0, self.channels), np.float32)
        got = frames / self.samplerate
        stopped = max_frames is not None and frames > max_frames
        if not stopped and self.duration_s > 1.0 and got < 0.9 * self.duration_s - 0.5:
            raise AudioError(f"{self.name} is truncated: its header announces "
                             f"{self.duration_s:.1f} s of audio but only {got:.1f} s could be "
                             "decoded. Re-export or re-upload the file.")
        return np.ascontiguousarray(np.concatenate(parts, axis=1).T, dtype=np.float32)

    def close(self) -> None:
        if self.tmp is not None:
            self.tmp.close()


def _open(data: bytes, name: str) -> sf.SoundFile | _Fallback:
    """libsndfile's view of the file, else the fallback decoder's; rate checked."""
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return _Fallback(data, name)
    try:
        _check_rate(f.samplerate, name)
    except AudioError:
        f.close()
        raise
    return f


def info(source: AudioSource) -> AudioInfo:
    """Describe a clip's container (rate, channels, length) without decoding it all."""
    data = _read_bytes(source)
    name = _name_of(source)
    if not data:
        raise AudioError(f"{name} is empty (0 bytes).")
    _check_wav_complete(data, name)
    f = _open(data, name)
    try:
        if isinstance(f, _Fallback):
            return AudioInfo(f.samplerate, f.channels, round(f.duration_s * f.samplerate),
                             f.duration_s, f.format, "")
        return AudioInfo(f.samplerate, f.channels, f.frames, f.frames / f.samplerate,
                         f.format, f.subtype)
    finally:
        f.close()


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
    return decode(source, sr, max_seconds=max_seconds, mono=mono)[:2]


#: Peak (× full scale) up to which samples beyond full scale are scaled back without a
#: warning: lossy decoders (Opus, MP3, AAC) routinely overshoot by a few per cent on loud
#: speech (SAVEE's Opus files reach 1.07×), a decoding detail like resampling. Beyond it
#: (a float file holding any value) the quality report says so.
CODEC_OVERSHOOT = 1.5


def decode(source: AudioSource, sr: int | None = None, *,
           max_seconds: float = config.MAX_AUDIO_SECONDS, mono: bool = True,
           ) -> tuple[np.ndarray, int, tuple[str, ...]]:
    """`load_audio` plus notes on what was done to the samples (for the quality report):
    float samples beyond full scale scaled back into [-1, 1] (noted only beyond
    `CODEC_OVERSHOOT`), channels that cancel out when mixed to mono."""
    data = _read_bytes(source)
    name = _name_of(source)
    if not data:
        raise AudioError(f"{name} is empty (0 bytes).")
    _check_wav_complete(data, name)
    notes: list[str] = []
    f = _open(data, name)
    try:
        native_sr = f.samplerate
        seconds = f.duration_s if isinstance(f, _Fallback) else f.frames / native_sr
        if seconds > max_seconds:  # before decoding: a long file costs nothing to refuse
            raise AudioError(_too_long(name, seconds, max_seconds))
        if isinstance(f, _Fallback):
            y2d = f.read(max_frames=int(max_seconds * native_sr) + native_sr)
        else:
            try:
                y2d = f.read(dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioError(f"{name} is corrupt or truncated ({_clean(err)}).") from None
    finally:
        f.close()
    if y2d.shape[0] == 0:
        raise AudioError(f"{name} contains no audio samples.")
    if y2d.shape[0] / native_sr > max_seconds:
        raise AudioError(_too_long(name, y2d.shape[0] / native_sr, max_seconds))
    if not np.isfinite(y2d).all():
        raise AudioError(f"{name} contains invalid samples (NaN or infinity).")
    peak = float(np.max(np.abs(y2d)))
    if peak > 1.0:
        y2d = y2d / peak
    if peak > CODEC_OVERSHOOT:
        notes.append(f"The decoded samples reach {peak:.3g}× full scale, far beyond what a "
                     "lossy codec's overshoot explains (a float file can hold any value); "
                     "the clip was scaled down to fit, so its level says nothing about the "
                     "recording's.")
    if mono and y2d.shape[1] > 1:
        y = y2d.mean(axis=1)
        loudest = float(np.sqrt(np.mean(y2d.astype(np.float64) ** 2, axis=0)).max())
        mixed = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
        if loudest > 1e-4 and mixed < 0.1 * loudest:
            notes.append("The channels cancel out when mixed to mono (opposite phase): what "
                         "remains is far quieter than either channel, and predictions on it "
                         "mean little.")
    else:
        y = y2d.mean(axis=1) if mono else y2d.T
    y = np.ascontiguousarray(y, dtype=np.float32)
    if sr is not None and int(sr) != native_sr:
        y = resample(y, native_sr, int(sr))
        native_sr = int(sr)
    return y, int(native_sr), tuple(notes)


#: The shortest clip a model scores: a spoken word takes longer; anything shorter is a
#: stray click of a record button, and a prediction on it would be a guess.
MIN_SCORE_SECONDS = 0.2


def check_scorable(y: np.ndarray, sr: int, name: str = "the clip") -> None:
    """Raise `AudioError` when decoded ``y`` (at ``sr`` Hz) is too short to score."""
    seconds = len(y) / sr if sr else 0.0
    if seconds < MIN_SCORE_SECONDS:
        raise AudioError(f"{name} lasts {seconds * 1000:.0f} ms: too short to hold speech "
                         f"(a model needs at least {MIN_SCORE_SECONDS:g} s). Record or upload "
                         "a longer clip.")


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


def _sum_squares(y: np.ndarray, chunk: int = 1 << 20) -> float:
    """Σ y² in float64, a chunk at a time (no float64 copy of a long clip)."""
    return float(sum(np.dot(c, c) for c in (y[i:i + chunk].astype(np.float64)
                                           for i in range(0, len(y), chunk))))


def quality_report(y: np.ndarray, sr: int, channels: int = 1,
                   notes: tuple[str, ...] = ()) -> QualityReport:
    """Check level, clipping and silence of mono samples ``y`` at ``sr`` Hz; ``notes`` (from
    `decode`) come first among the warnings."""
    y = np.asarray(y, dtype=np.float32)
    duration = len(y) / sr if sr else 0.0
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    rms = math.sqrt(_sum_squares(y) / len(y)) if len(y) else 0.0
    rms_db = 20 * math.log10(rms) if rms > 0 else -math.inf
    clipped = float(np.mean(np.abs(y) >= 0.999)) if len(y) else 0.0
    frame = max(1, int(0.02 * sr))
    n = len(y) // frame
    if n:
        frame_rms = np.sqrt(np.mean(y[: n * frame].reshape(n, frame) ** 2, axis=1))
        silent = float(np.mean(frame_rms < 10 ** (-50 / 20)))
    else:  # shorter than one frame: the clip is the frame
        silent = float(rms < 10 ** (-50 / 20)) if len(y) else 1.0
    notes = list(notes)
    if peak == 0.0:
        notes.append("The clip is digital silence: every model will only be guessing.")
    elif rms_db < -45:
        notes.append(f"The clip is very quiet ({rms_db:.0f} dBFS); predictions may be unreliable.")
    if clipped > 0.001:
        notes.append(f"{clipped:.1%} of samples are clipped (at full scale); loud distortion "
                     "can look like anger to a model.")
    if duration < 1.0:
        shown = f"{duration * 1000:.0f} ms" if duration < 0.1 else f"{duration:.2f} s"
        notes.append(f"The clip is short ({shown}); CREMA-D clips last 1.3–5 s.")
    if peak > 0 and silent > 0.8:
        notes.append(f"{silent:.0%} of the clip is near-silent.")
    if sr < 16000:
        notes.append(f"Low sample rate ({sr} Hz): frequencies above {sr // 2} Hz are missing.")
    return QualityReport(duration, int(sr), int(channels), peak, rms_db, clipped, silent,
                         tuple(notes))
