"""Feature spaces FS1 (169-d vector) and FS2 (128 × 216 log-mel), one STFT per clip.

FS1 = mean over frames of ZCR (1) + RMS (1) + MFCC (20) + chroma (12) + spectral contrast
(7) + mel power (128). FS2 = mel power in dB relative to the clip's own maximum
(``ref=np.max``, ``top_db=80``), so values lie in [-80, 0], padded with -80 dB (silence) or
cropped to 216 frames. Both use sr 22050, n_fft 2048, hop 512 (the Keras notebook seed).

The magnitude STFT is computed once per clip and handed to every librosa feature through
its ``S=`` argument; ZCR and RMS are time-domain and read ``y`` directly, as librosa does
when given ``y``. The values therefore equal separate librosa calls on ``y``.

Every function here is pure: arrays in, arrays out, the `FeatureConfig` as a keyword-only
argument, and a precomputed spectrogram accepted in place of the signal (librosa's ``y`` or
``S`` convention) so a caller that needs several features computes the STFT once. Batches,
the worker pool, the on-disk cache and augmented copies live in `ser.store`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np

from ser import config

SPACES = ("fs1", "fs2")
#: Every space a model can read: the seeds' two and ``voice``, the pretrained voice
#: encoder's statistics (`ser.voice`). ``voice`` is computed only when asked for by name.
ALL_SPACES = ("fs1", "fs2", "voice")
FS2_NORMS = ("none", "utterance", "denoise", "lowpass")
#: How FS2 images get their time axis: ``fixed`` = cropped/padded to ``fs2_frames`` (the
#: seeds); ``variable`` = each clip's own frames (see `variable_frames`).
LENGTHS = ("fixed", "variable")
#: Key of the per-clip frame counts that travel beside variable-length FS2 arrays.
LENGTH_KEY = "fs2_len"
#: Bump when the feature code changes in a way that changes values: old caches are ignored.
FEATURE_VERSION = 1


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines feature values. Stored in bundles and cache keys."""

    sample_rate: int = config.SAMPLE_RATE
    n_fft: int = config.N_FFT
    hop_length: int = config.HOP_LENGTH
    n_mels: int = config.N_MELS
    n_mfcc: int = config.N_MFCC
    fs2_frames: int = config.FS2_FRAMES
    top_db: float = config.FS2_TOP_DB
    version: int = FEATURE_VERSION
    #: ``"utterance"`` removes each mel band's mean over the clip's own sounding frames from
    #: FS2 (see `utterance_normalise`); ``"denoise"`` removes each band's stationary noise
    #: floor (see `floor_subtract`); ``"lowpass"`` silences the mel bands above 8 kHz (see
    #: `lowpass`); ``"none"`` keeps the seeds' FS2.
    fs2_norm: str = "none"

    def __post_init__(self) -> None:
        if self.fs2_norm not in FS2_NORMS:
            raise ValueError(f"fs2_norm must be one of {', '.join(FS2_NORMS)}, not "
                             f"{self.fs2_norm!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.fs2_norm == "none":
            # Absent at its default, so every cache key and card written before the option
            # existed stays valid.
            del d["fs2_norm"]
        return d

    def extraction(self) -> FeatureConfig:
        """The config features are extracted and cached with: the FS2 normalisation is
        applied after the cache, so both kinds of model share one cache entry."""
        return replace(self, fs2_norm="none")

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def fs1_dim(self) -> int:
        """Length of the FS1 vector: ZCR, RMS, MFCCs, chroma, contrast rows, mel bands."""
        return 1 + 1 + self.n_mfcc + config.N_CHROMA + config.CONTRAST_ROWS + self.n_mels

    def input_shape(self, space: str) -> tuple[int, ...]:
        """Shape one clip takes in ``space`` without the batch axis, e.g. ``(1, 128, 216)``."""
        if space == "voice":
            from ser.voice import VOICE_DIM

            return (1, VOICE_DIM)
        return (1, self.fs1_dim) if space == "fs1" else (1, self.n_mels, self.fs2_frames)

    def model_dims(self) -> dict[str, int]:
        """The input-size keyword arguments a model built for this config takes."""
        return {"fs1_dim": self.fs1_dim, "n_mels": self.n_mels, "frames": self.fs2_frames}

    @property
    def max_variable_frames(self) -> int:
        """Longest variable-length FS2 image kept (longer clips are cropped)."""
        return self.fs2_frames * config.FS2_MAX_WINDOWS

    @property
    def window_seconds(self) -> float:
        """Length of audio one FS2 input covers."""
        return self.fs2_frames * self.hop_length / self.sample_rate


DEFAULT = FeatureConfig()


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int):
    """librosa's Slaney mel filterbank, stored sparse: each filter spans only a few bins,
    so the product costs a fraction of the dense one and gives the same sums."""
    import librosa
    from scipy import sparse

    return sparse.csr_matrix(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels))


def magnitude_stft(y: np.ndarray, *, cfg: FeatureConfig = DEFAULT) -> np.ndarray:
    """``|STFT|`` with librosa's defaults (centred, Hann), shape ``(1 + n_fft/2, frames)``."""
    import librosa

    return np.abs(librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length))


def mel_power(S_mag: np.ndarray, *, cfg: FeatureConfig = DEFAULT) -> np.ndarray:
    """Mel power spectrogram from a magnitude STFT (as ``librosa.feature.melspectrogram``)."""
    return np.asarray(_mel_basis(cfg.sample_rate, cfg.n_fft, cfg.n_mels) @ (S_mag ** 2),
                      dtype=np.float32)


def zero_crossing_rate(y: np.ndarray, *, frame_length: int = config.N_FFT,
                       hop_length: int = config.HOP_LENGTH) -> np.ndarray:
    """Per-frame zero-crossing rate, equal to ``librosa.feature.zero_crossing_rate`` with its
    defaults (centred, edge padding, |y| ≤ 1e-10 counts as 0, first sample of a frame never
    a crossing), computed from one cumulative sum instead of framing the signal: O(n).

    Returns shape ``(1, frames)``.
    """
    pad = frame_length // 2
    yp = np.pad(np.asarray(y), pad, mode="edge")
    sign = np.signbit(np.where(np.abs(yp) <= 1e-10, 0.0, yp))
    cross = np.concatenate([[0], np.cumsum(sign[1:] != sign[:-1])])  # cross[i]: pairs < i
    n_frames = 1 + (len(yp) - frame_length) // hop_length
    starts = np.arange(n_frames) * hop_length
    counts = cross[starts + frame_length - 1] - cross[starts]
    return (counts / frame_length)[None, :]


def parabolic_shift(x: np.ndarray) -> np.ndarray:
    """Offset of the vertex of the parabola through each row and its two neighbours
    (along axis 0), in rows; 0 at the edges and where the vertex lies beyond a neighbour.

    The stencil piptrack uses, in numpy: librosa runs it as a numba gufunc, which crashes
    the process (segmentation fault) with numba 0.68 on numpy 2.4, and it is private API.
    Computed in ``x``'s dtype, as librosa does, so the values are the same.
    """
    x = np.asarray(x)
    out = np.zeros_like(x)
    if x.shape[0] < 3:
        return out
    up, mid, down = x[2:], x[1:-1], x[:-2]
    a = up + down - 2 * mid
    b = (up - down) / x.dtype.type(2) if x.dtype.kind == "f" else (up - down) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:-1] = np.where(np.abs(b) >= np.abs(a), 0, -b / a)
    return out


def estimate_tuning(S_pow: np.ndarray, *, sr: int = config.SAMPLE_RATE,
                    n_fft: int = config.N_FFT, fmin: float = 150.0, fmax: float = 4000.0,
                    threshold: float = 0.1) -> float:
    """The tuning offset ``chroma_stft`` estimates (``librosa.estimate_tuning`` with
    piptrack's defaults), in fractions of a chroma bin.

    piptrack interpolates peaks over the whole spectrogram and then keeps only 150–4000 Hz;
    the result depends only on those rows, their immediate neighbours and each frame's
    maximum, so computing just that band gives the same value at a fraction of the cost.
    """
    import librosa

    S = np.abs(S_pow)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    keep = np.flatnonzero((freqs >= max(fmin, 0)) & (freqs < min(fmax, sr / 2)))
    if keep.size == 0 or S.shape[0] != len(freqs):
        raise ValueError(f"estimate_tuning needs a power spectrogram of {len(freqs)} rows "
                         f"(n_fft {n_fft}) covering {fmin:g}–{fmax:g} Hz; got {S.shape[0]}.")
    lo, hi = max(int(keep[0]) - 1, 0), min(int(keep[-1]) + 2, S.shape[0])
    band = S[lo:hi]
    shift = parabolic_shift(band)
    dskew = 0.5 * np.gradient(band, axis=-2) * shift
    ref_value = threshold * S.max(axis=-2, keepdims=True)
    peaks = librosa.util.localmax(band * (band > ref_value), axis=-2)
    rows = np.arange(lo, hi)[:, None]
    idx = np.nonzero(peaks & (rows >= keep[0]) & (rows <= keep[-1]))
    pitch = (idx[0] + lo + shift[idx]) * float(sr) / n_fft
    mag = band[idx] + dskew[idx]
    voiced = pitch > 0
    floor = np.median(mag[voiced]) if voiced.any() else 0.0
    import warnings

    with warnings.catch_warnings():  # near-silent clips have no peaks: tuning 0, no noise
        warnings.simplefilter("ignore", UserWarning)
        return float(librosa.pitch_tuning(pitch[(mag >= floor) & voiced], resolution=0.01,
                                          bins_per_octave=12))


def fs1(y: np.ndarray, *, S: np.ndarray | None = None, mel: np.ndarray | None = None,
        cfg: FeatureConfig = DEFAULT) -> np.ndarray:
    """The FS1 vector (169 values with the seed config) of mono ``y`` at ``cfg.sample_rate``.

    ``S`` is a precomputed magnitude STFT and ``mel`` its mel power; pass them to skip
    recomputing. ZCR and RMS are time-domain, so ``y`` is always needed.

    Examples
    --------
    >>> v = fs1(np.zeros(22050, np.float32))  # doctest: +SKIP
    >>> v.shape
    (169,)
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    S_mag = magnitude_stft(y, cfg=cfg) if S is None else S
    if mel is None:
        mel = mel_power(S_mag, cfg=cfg)
    sr, n_fft, hop = cfg.sample_rate, cfg.n_fft, cfg.hop_length
    zcr = zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=cfg.n_mfcc)
    if np.any(S_mag):
        S_pow = S_mag ** 2
        chroma = librosa.feature.chroma_stft(S=S_pow, sr=sr, n_fft=n_fft, hop_length=hop,
                                             tuning=estimate_tuning(S_pow, sr=sr, n_fft=n_fft))
    else:
        # librosa's tuning estimate divides by zero on digital silence; silence has no
        # pitch class, and its chroma is zero either way.
        chroma = np.zeros((config.N_CHROMA, S_mag.shape[1]), np.float32)
    contrast = librosa.feature.spectral_contrast(S=S_mag, sr=sr, n_fft=n_fft, hop_length=hop)
    parts = [zcr, rms, mfcc, chroma, contrast, mel]
    return np.concatenate([p.mean(axis=1) for p in parts]).astype(np.float32)


def fs2(y: np.ndarray | None = None, *, S: np.ndarray | None = None,
        mel: np.ndarray | None = None, frames: int | None = None,
        cfg: FeatureConfig = DEFAULT) -> np.ndarray:
    """The FS2 log-mel image: ``(n_mels, frames)`` float32 in [-top_db, 0] dB.

    Give the signal ``y``, or its magnitude STFT ``S``, or its mel power ``mel``.
    ``frames`` defaults to ``cfg.fs2_frames`` (216); pass ``0`` to keep the clip's own
    length (for variable-length models and long-clip windows).
    """
    import librosa

    if mel is None:
        if S is None:
            if y is None:
                raise ValueError("fs2 needs y, S or mel.")
            S = magnitude_stft(np.asarray(y, dtype=np.float32), cfg=cfg)
        mel = mel_power(S, cfg=cfg)
    if mel.max() <= 1e-10:
        # ref=np.max on silence would put every bin at 0 dB, the loudest value.
        db = np.full(mel.shape, -cfg.top_db, np.float32)
    else:
        db = librosa.power_to_db(mel, ref=np.max, top_db=cfg.top_db).astype(np.float32)
    n = cfg.fs2_frames if frames is None else frames
    return fit_frames(db, n, floor=-cfg.top_db) if n else db


def mel_power_chunked(y: np.ndarray, *, cfg: FeatureConfig = DEFAULT,
                      chunk_frames: int = 512) -> np.ndarray:
    """``mel_power(magnitude_stft(y))`` computed ``chunk_frames`` frames at a time: the
    same values (the centred STFT's frames are cut from the zero-padded signal), but the
    complex STFT of a 10-minute clip (hundreds of MB) never exists at once."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    half, hop = cfg.n_fft // 2, cfg.hop_length
    n_frames = 1 + len(y) // hop
    out = np.empty((cfg.n_mels, n_frames), np.float32)
    for a in range(0, n_frames, chunk_frames):
        b = min(n_frames, a + chunk_frames)
        start, stop = a * hop - half, (b - 1) * hop + half + (cfg.n_fft - 2 * half)
        piece = np.zeros(stop - start, np.float32)  # the zero padding of centring
        lo, hi = max(start, 0), min(stop, len(y))
        if hi > lo:
            piece[lo - start:hi - start] = y[lo:hi]
        S = np.abs(librosa.stft(piece, n_fft=cfg.n_fft, hop_length=hop, center=False))
        out[:, a:b] = mel_power(S, cfg=cfg)[:, :b - a]
    return out


def fit_frames(db: np.ndarray, n: int, *, floor: float = -config.FS2_TOP_DB) -> np.ndarray:
    """Crop or pad (with ``floor`` dB, i.e. silence) the time axis to ``n`` frames."""
    t = db.shape[-1]
    if t >= n:
        return np.ascontiguousarray(db[..., :n])
    pad = np.full(db.shape[:-1] + (n - t,), floor, dtype=db.dtype)
    return np.concatenate([db, pad], axis=-1)


def variable_frames(db: np.ndarray, cfg: FeatureConfig = DEFAULT) -> np.ndarray:
    """A whole-clip log-mel image for a variable-length model: its own frames, padded with
    the floor up to `config.FS2_MIN_FRAMES` and cropped at ``cfg.max_variable_frames``."""
    t = db.shape[-1]
    n = min(max(t, config.FS2_MIN_FRAMES), cfg.max_variable_frames)
    return db if n == t else fit_frames(db, n, floor=-cfg.top_db)


def stack_padded(images, *, floor: float = -config.FS2_TOP_DB) -> tuple[np.ndarray, np.ndarray]:
    """Stack images (or batches of images) of different lengths along the first axis,
    padding the time axis with ``floor`` dB to the longest. Returns ``(array, frames)``:
    ``array`` is ``(N, n_mels, T_max)`` float32, ``frames`` each row's own length."""
    blocks = [np.asarray(x, dtype=np.float32) for x in images]
    blocks = [b[None] if b.ndim == 2 else b for b in blocks]
    if not blocks:
        return np.zeros((0, 0, 0), np.float32), np.zeros(0, np.int32)
    t_max = max(b.shape[-1] for b in blocks)
    out = np.full((sum(len(b) for b in blocks), blocks[0].shape[1], t_max), floor, np.float32)
    frames, row = [], 0
    for b in blocks:
        out[row:row + len(b), :, :b.shape[-1]] = b
        frames += [b.shape[-1]] * len(b)
        row += len(b)
    return out, np.asarray(frames, np.int32)


def concat_variable(parts: list[dict], spaces, *, floor: float = -config.FS2_TOP_DB) -> dict:
    """Concatenate feature dicts row-wise; variable-length FS2 (with `LENGTH_KEY`) is
    re-padded to the longest image, keeping each row's own frame count."""
    out = {s: np.concatenate([np.asarray(p[s]) for p in parts]) for s in spaces
           if s != "fs2" or LENGTH_KEY not in parts[0]}
    if "fs2" in spaces and LENGTH_KEY in parts[0]:
        t_max = max(np.asarray(p["fs2"]).shape[-1] for p in parts)
        blocks = []
        for p in parts:
            a = np.asarray(p["fs2"], dtype=np.float32)
            blocks.append(a if a.shape[-1] == t_max else fit_frames(a, t_max, floor=floor))
        out["fs2"] = np.concatenate(blocks)
        out[LENGTH_KEY] = np.concatenate([np.asarray(p[LENGTH_KEY]) for p in parts])
    return out


def utterance_normalise(db: np.ndarray, *, top_db: float = config.FS2_TOP_DB,
                        active_db: float = 50.0) -> np.ndarray:
    """Remove each mel band's mean over the clip's sounding frames from log-mel images.

    ``db`` is one ``(n_mels, frames)`` image or a batch ``(N, n_mels, frames)`` in dB
    relative to each clip's maximum, padded with ``-top_db``. A frame counts as sounding
    when its loudest band is within ``active_db`` of the clip's peak, so padding and pauses
    do not pull the means down. What a microphone, a room or a codec does to the spectrum
    is (nearly) a fixed gain per band, i.e. an offset per band in dB, which this removes;
    so does a single clip on its own, which is what the Predict page has. Clips with no
    sounding frame (silence) are returned unchanged.
    """
    x = np.asarray(db, dtype=np.float32)
    single = x.ndim == 2
    x = x[None] if single else x
    # padding sits at -top_db: never a sounding frame, even with a floor above -active_db
    active = x.max(axis=1, keepdims=True) > max(-active_db, -float(top_db) + 1e-3)  # (N,1,T)
    n = active.sum(axis=2, keepdims=True)  # (N, 1, 1)
    means = np.where(active, x, 0.0).sum(axis=2, keepdims=True) / np.maximum(n, 1)
    out = np.where(n > 0, x - means, x).astype(np.float32)
    return out[0] if single else out


#: `floor_subtract`: the percentile of a band's power over the clip's frames taken as its
#: noise floor, and how many times that floor is subtracted.
FLOOR_PERCENTILE = 20.0
FLOOR_OVERSUBTRACT = 8.0


def floor_subtract(db: np.ndarray, *, top_db: float = config.FS2_TOP_DB,
                   percentile: float = FLOOR_PERCENTILE,
                   oversubtract: float = FLOOR_OVERSUBTRACT) -> np.ndarray:
    """Remove each mel band's stationary noise floor from log-mel images.

    ``db`` is one ``(n_mels, frames)`` image or a batch ``(N, n_mels, frames)`` in dB
    relative to each clip's maximum, padded with ``-top_db``. Per clip and band, the
    ``percentile`` of the power over the clip's frames (padding excluded) stands for the
    background noise; ``oversubtract`` times it is taken off every frame's power (spectral
    subtraction), what is left is put back in dB relative to the new maximum and clipped at
    ``-top_db``. Pauses and noise-only frames fall to the floor.

    Why: a corpus's background noise is a cue a network learns. In CREMA-D the noise level
    is fixed while the actors' level follows the emotion, so the gap between speech and
    noise says "angry" or "sad" there; a visitor's quiet room (or a studio corpus) then
    looks like a loud emotion. With the floor removed every recording chain leaves pauses
    at the same ``-top_db``. It needs nothing but the clip itself. Clips with nothing left
    after the subtraction, or silent ones, come back as all ``-top_db``.

    Measured (README, cross-corpus): a CREMA-D model trained on these images does worse on
    unseen corpora, not better — a clean recording keeps weak detail that a noisy one
    loses. Clipping every image at a common floor (``top_db=30``) is what helped.
    """
    x = np.asarray(db, dtype=np.float32)
    single = x.ndim == 2
    x = x[None] if single else x
    out = np.empty_like(x)
    for a in range(0, len(x), 256):  # in float64, a few hundred images at a time
        out[a:a + 256] = _floor_subtract(x[a:a + 256], -float(top_db), percentile,
                                         oversubtract)
    return out[0] if single else out


def _floor_subtract(x: np.ndarray, floor: float, percentile: float,
                    oversubtract: float) -> np.ndarray:
    real = x.max(axis=1, keepdims=True) > floor + 1e-3  # (N, 1, T): not padding
    p = np.power(10.0, x.astype(np.float64) / 10.0)
    noise = np.stack([
        np.percentile(p[i][:, real[i, 0]], percentile, axis=1) if real[i].any()
        else np.zeros(x.shape[1]) for i in range(len(x))])[:, :, None]  # (N, B, 1)
    left = np.maximum(p - oversubtract * noise, 0.0) * real
    peak = left.max(axis=(1, 2), keepdims=True)  # (N, 1, 1)
    out = 10.0 * np.log10(np.maximum(left, 1e-30) / np.maximum(peak, 1e-30))
    return np.where(peak > 0, np.maximum(out, floor), floor).astype(np.float32)


#: `lowpass`: the cutoff, the Nyquist frequency of CREMA-D's 16 kHz audio (the bands above
#: it are empty in every CREMA-D clip and full in every other corpus's).
LOWPASS_HZ = 8000.0


@lru_cache(maxsize=8)
def lowpass_bands(sr: int, n_mels: int, cutoff: float = LOWPASS_HZ) -> int:
    """How many of the lowest mel bands lie wholly below ``cutoff`` Hz (librosa's Slaney
    mel scale from 0 Hz to ``sr / 2``; band ``i`` spans edges ``i`` to ``i + 2``). 115 of
    128 with the seeds' config."""
    import librosa

    edges = librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=sr / 2)
    return int(np.count_nonzero(edges[2:] <= cutoff))


def lowpass(db: np.ndarray, *, sr: int = config.SAMPLE_RATE,
            top_db: float = config.FS2_TOP_DB) -> np.ndarray:
    """Silence the mel bands above `LOWPASS_HZ` in log-mel images, as if every recording
    had been made at CREMA-D's 16 kHz.

    ``db`` is one ``(n_mels, frames)`` image or a batch ``(N, n_mels, frames)`` in dB
    relative to each clip's maximum, in [-top_db, 0]. Bands that reach above the cutoff are
    set to ``-top_db``; the rest is put back relative to its own maximum (a clip whose peak
    lay above the cutoff has its loudest remaining bin at 0 dB again) and clipped at
    ``-top_db``; bins already at the floor (padding, or quieter than it) stay there.
    Silent clips stay silent.

    Why: in a pool of corpora the empty top bands tell CREMA-D (most of the training clips)
    from every other corpus, so a network can learn one set of rules for "CREMA-D" and one
    for "the rest" instead of rules about emotion.
    """
    src = np.asarray(db)
    single = src.ndim == 2
    src = src[None] if single else src
    out = np.empty(src.shape, np.float32)
    keep = lowpass_bands(int(sr), src.shape[1])
    floor = -float(top_db)
    out[:, keep:, :] = floor
    for a in range(0, len(src), 256):  # a few hundred images at a time: flat memory
        low = np.asarray(src[a:a + 256, :keep, :], dtype=np.float32)
        peak = low.max(axis=(1, 2), keepdims=True, initial=floor)
        shift = np.where(peak > floor + 1e-3, peak, 0.0).astype(np.float32)
        out[a:a + 256, :keep, :] = np.where(low > floor, np.maximum(low - shift, floor),
                                            floor)
    return out[0] if single else out


def apply_fs2_norm(fs2_db: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """``cfg``'s FS2 normalisation on one image or a batch (identity for ``"none"``)."""
    if cfg.fs2_norm == "lowpass":
        return lowpass(fs2_db, sr=cfg.sample_rate, top_db=cfg.top_db)
    if cfg.fs2_norm == "utterance":
        return utterance_normalise(fs2_db, top_db=cfg.top_db)
    if cfg.fs2_norm == "denoise":
        return floor_subtract(fs2_db, top_db=cfg.top_db)
    return fs2_db


def clip_features(y: np.ndarray, *, cfg: FeatureConfig = DEFAULT,
                  spaces: tuple[str, ...] = SPACES, length: str = "fixed"
                  ) -> dict[str, np.ndarray]:
    """Every requested space of one clip from a single STFT. ``length="variable"`` keeps
    the clip's own FS2 frames (`variable_frames`) instead of cropping/padding to 216."""
    if length not in LENGTHS:
        raise ValueError(f"length must be fixed or variable, not {length!r}")
    out = {}
    if "voice" in spaces:
        from ser.voice import voice_vector

        out["voice"] = voice_vector(y, cfg.sample_rate)
        if not {"fs1", "fs2"} & set(spaces):
            return out
    S = magnitude_stft(np.asarray(y, dtype=np.float32), cfg=cfg)
    mel = mel_power(S, cfg=cfg)
    if "fs1" in spaces:
        out["fs1"] = fs1(y, S=S, mel=mel, cfg=cfg)
    if "fs2" in spaces:
        if length == "variable":
            out["fs2"] = apply_fs2_norm(variable_frames(fs2(mel=mel, frames=0, cfg=cfg), cfg),
                                        cfg)
        else:
            out["fs2"] = apply_fs2_norm(fs2(mel=mel, cfg=cfg), cfg)
    return out
