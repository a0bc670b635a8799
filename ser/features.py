"""Feature spaces FS1 (169-d vector) and FS2 (128 × 216 log-mel), one STFT per clip.

FS1 = mean over frames of ZCR (1) + RMS (1) + MFCC (20) + chroma (12) + spectral contrast
(7) + mel power (128). FS2 = mel power in dB relative to the clip's own maximum
(``ref=np.max``, ``top_db=80``), so values lie in [-80, 0], padded with -80 dB (silence) or
cropped to 216 frames. Both use sr 22050, n_fft 2048, hop 512 (the Keras notebook seed).

The magnitude STFT is computed once per clip and handed to every librosa feature through
its ``S=`` argument; ZCR and RMS are time-domain and read ``y`` directly, as librosa does
when given ``y``. The values therefore equal separate librosa calls on ``y``.

Batch extraction (`extract_manifest`) runs on every core and caches its result on disk
keyed by the clips' path/size/mtime, the feature config and the augmentation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ser import config
from ser.augment import AugmentConfig, augment_waveform

SPACES = ("fs1", "fs2")
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

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]

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


def magnitude_stft(y: np.ndarray, cfg: FeatureConfig = DEFAULT) -> np.ndarray:
    """``|STFT|`` with librosa's defaults (centred, Hann), shape ``(1 + n_fft/2, frames)``."""
    import librosa

    return np.abs(librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length))


def mel_power(S_mag: np.ndarray, cfg: FeatureConfig = DEFAULT) -> np.ndarray:
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

    try:  # the parabolic-peak stencil piptrack uses (private; fall back if it moves)
        from librosa.core.pitch import _parabolic_interpolation
    except ImportError:
        return float(librosa.estimate_tuning(S=S_pow, sr=sr, n_fft=n_fft, bins_per_octave=12))
    S = np.abs(S_pow)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    keep = np.flatnonzero((freqs >= max(fmin, 0)) & (freqs < min(fmax, sr / 2)))
    if keep.size == 0 or S.shape[0] != len(freqs):
        return float(librosa.estimate_tuning(S=S_pow, sr=sr, n_fft=n_fft, bins_per_octave=12))
    lo, hi = max(int(keep[0]) - 1, 0), min(int(keep[-1]) + 2, S.shape[0])
    band = S[lo:hi]
    shift = _parabolic_interpolation(band, axis=-2)
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


def fs1(y: np.ndarray, cfg: FeatureConfig = DEFAULT, *, S_mag: np.ndarray | None = None,
        mel: np.ndarray | None = None) -> np.ndarray:
    """The 169-d FS1 vector of mono ``y`` sampled at ``cfg.sample_rate``.

    Pass a precomputed magnitude STFT ``S_mag`` (and its ``mel``) to skip recomputing them.

    Examples
    --------
    >>> v = fs1(np.zeros(22050, np.float32))  # doctest: +SKIP
    >>> v.shape
    (169,)
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if S_mag is None:
        S_mag = magnitude_stft(y, cfg)
    if mel is None:
        mel = mel_power(S_mag, cfg)
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


def fs2(y: np.ndarray, cfg: FeatureConfig = DEFAULT, *, S_mag: np.ndarray | None = None,
        mel: np.ndarray | None = None, frames: int | None = None) -> np.ndarray:
    """The FS2 log-mel image of ``y``: ``(n_mels, frames)`` float32 in [-top_db, 0] dB.

    ``frames`` defaults to ``cfg.fs2_frames`` (216); pass ``0`` to keep the clip's own
    length (for variable-length models and long-clip windows).
    """
    import librosa

    if mel is None:
        if S_mag is None:
            S_mag = magnitude_stft(np.asarray(y, dtype=np.float32), cfg)
        mel = mel_power(S_mag, cfg)
    if mel.max() <= 1e-10:
        # ref=np.max on silence would put every bin at 0 dB, the loudest value.
        db = np.full(mel.shape, -cfg.top_db, np.float32)
    else:
        db = librosa.power_to_db(mel, ref=np.max, top_db=cfg.top_db).astype(np.float32)
    n = cfg.fs2_frames if frames is None else frames
    return fit_frames(db, n, floor=-cfg.top_db) if n else db


def fit_frames(db: np.ndarray, n: int, *, floor: float = -config.FS2_TOP_DB) -> np.ndarray:
    """Crop or pad (with ``floor`` dB, i.e. silence) the time axis to ``n`` frames."""
    t = db.shape[-1]
    if t >= n:
        return np.ascontiguousarray(db[..., :n])
    pad = np.full(db.shape[:-1] + (n - t,), floor, dtype=db.dtype)
    return np.concatenate([db, pad], axis=-1)


def clip_features(y: np.ndarray, cfg: FeatureConfig = DEFAULT,
                  spaces: tuple[str, ...] = SPACES) -> dict[str, np.ndarray]:
    """Every requested space of one clip from a single STFT."""
    S_mag = magnitude_stft(np.asarray(y, dtype=np.float32), cfg)
    mel = mel_power(S_mag, cfg)
    out = {}
    if "fs1" in spaces:
        out["fs1"] = fs1(y, cfg, S_mag=S_mag, mel=mel)
    if "fs2" in spaces:
        out["fs2"] = fs2(y, cfg, mel=mel)
    return out


def features_from_source(source, cfg: FeatureConfig = DEFAULT,
                         spaces: tuple[str, ...] = SPACES) -> dict[str, np.ndarray]:
    """Decode a path/bytes/file with `ser.audio.load` at the config's rate, then featurise."""
    from ser.audio import load

    y, _ = load(source, sr=cfg.sample_rate)
    return clip_features(y, cfg, spaces)


# ---------------------------------------------------------------- batch extraction + cache

def _file_key(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


def cache_key(paths: list[str], cfg: FeatureConfig, spaces: tuple[str, ...],
              aug: AugmentConfig | None) -> str:
    """Identifies one batch: the clips (path, size, mtime), the config, spaces, augmentation."""
    h = hashlib.sha1()
    h.update(json.dumps({"cfg": cfg.as_dict(), "spaces": sorted(spaces),
                         "aug": aug.as_dict() if aug and aug.enabled else None},
                        sort_keys=True).encode())
    for p in paths:
        h.update(_file_key(p).encode())
        h.update(b"\n")
    return h.hexdigest()[:20]


def _extract_task(task: tuple) -> tuple[int, dict | str]:
    """Decode one clip once; featurise the original and/or its augmented copies."""
    index, path, cfg, spaces, want_plain, augs = task
    from ser.audio import AudioError, load

    try:
        y, sr = load(path, sr=cfg.sample_rate)
    except AudioError as err:
        return index, str(err)
    out = {}
    if want_plain:
        out["plain"] = clip_features(y, cfg, spaces)
    for kind, aug in augs:
        out[kind] = clip_features(augment_waveform(y, sr, aug, Path(path).stem), cfg, spaces)
    return index, out


class FeatureError(RuntimeError):
    """Some clips of a batch could not be featurised; ``failures`` maps path → reason."""

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        first = next(iter(failures.items()))
        super().__init__(f"{len(failures)} clip(s) could not be read, e.g. {first[0]}: "
                         f"{first[1]}")


def extract_paths(paths: list[str], *, cfg: FeatureConfig = DEFAULT,
                  spaces: tuple[str, ...] = SPACES, augment: AugmentConfig | None = None,
                  cache: bool = True, cache_root: Path | None = None, workers: int | None = None,
                  progress=None) -> dict[str, np.ndarray]:
    """Features of many clips, stacked in ``paths`` order: ``{"fs1": (N, 169), "fs2": (N,
    128, 216)}``, float32. With ``augment`` the features are those of each clip's
    augmented copy.

    With ``cache`` (default) a repeated call with the same clips (same path, size, mtime),
    config, spaces and augmentation loads the arrays from disk instead of recomputing.
    ``progress(done, total)`` is called as clips finish.
    """
    if augment is not None and augment.enabled:
        return extract_with_augmented([], paths, cfg=cfg, spaces=spaces, augment=augment,
                                      cache=cache, cache_root=cache_root, workers=workers,
                                      progress=progress)[1]
    return extract_with_augmented(paths, [], cfg=cfg, spaces=spaces, cache=cache,
                                  cache_root=cache_root, workers=workers, progress=progress)[0]


def extract_with_augmented(paths: list[str], aug_paths: list[str], *,
                           cfg: FeatureConfig = DEFAULT, spaces: tuple[str, ...] = SPACES,
                           augment: AugmentConfig | None = None, copies: int = 1,
                           cache: bool = True, cache_root: Path | None = None,
                           workers: int | None = None,
                           progress=None) -> tuple[dict[str, np.ndarray] | None,
                                                   dict[str, np.ndarray] | None]:
    """Features of ``paths`` and of ``copies`` augmented copies of ``aug_paths`` in one pass.

    A clip in both lists is decoded once (decoding is a third of the cost). Each result, and
    each copy, is cached under the key `extract_paths` uses, so any can later be loaded
    alone and adding a copy re-uses the others. Returns ``(plain, augmented)``, with the
    copies stacked copy after copy (``copies * len(aug_paths)`` rows, the first numbered
    ``augment.copy``); an empty list gives
    ``None`` in its place.
    """
    paths = [str(p) for p in paths]
    enabled = augment is not None and augment.enabled
    aug_paths = [str(p) for p in aug_paths] if enabled else []
    spaces = tuple(s for s in SPACES if s in spaces)
    root = (cache_root or config.cache_dir()) / "features"
    jobs = {"plain": (paths, None)}
    if aug_paths:
        jobs.update({f"aug{k}": (aug_paths, replace(augment, copy=augment.copy + k))
                     for k in range(copies)})
    results: dict[str, dict[str, np.ndarray] | None] = {k: None for k in jobs}
    folders = {}
    for kind, (plist, aug) in jobs.items():
        if not plist:
            continue
        folders[kind] = root / cache_key(plist, cfg, spaces, aug)
        if cache and (folders[kind] / "done.json").exists():
            results[kind] = {s: np.load(folders[kind] / f"{s}.npy", mmap_mode="r")
                             for s in spaces}
    todo = [k for k in folders if results[k] is None]
    if todo:
        _extract_missing(jobs, todo, folders, results, cfg, spaces, cache, workers, progress)
    elif progress:
        n = len(paths) + len(aug_paths) * (copies if aug_paths else 0)
        progress(n, n)
    augmented = None
    if aug_paths:
        parts = [results[f"aug{k}"] for k in range(copies)]
        augmented = parts[0] if copies == 1 else {
            s: np.concatenate([np.asarray(part[s]) for part in parts]) for s in spaces}
    return results["plain"], augmented


def _extract_missing(jobs, todo, folders, results, cfg, spaces, cache, workers,
                     progress) -> None:
    """Compute (and cache) the uncached batches ``todo``, decoding each clip once."""
    from ser.parallel import map_unordered

    shapes = {"fs1": (config.FS1_DIM,), "fs2": (cfg.n_mels, cfg.fs2_frames)}
    out = {k: {s: np.empty((len(jobs[k][0]), *shapes[s]), np.float32) for s in spaces}
           for k in todo}
    # One task per distinct clip; remember where each of its batches' rows go.
    where: dict[str, dict[str, list[int]]] = {}
    for k in todo:
        for i, p in enumerate(jobs[k][0]):
            where.setdefault(p, {}).setdefault(k, []).append(i)
    unique = list(where)
    tasks = [(j, p, cfg, spaces, "plain" in where[p],
              [(k, jobs[k][1]) for k in where[p] if k != "plain"])
             for j, p in enumerate(unique)]
    failures: dict[str, str] = {}
    for j, result in map_unordered(_extract_task, tasks, workers=workers, progress=progress):
        p = unique[j]
        if isinstance(result, str):
            failures[p] = result
            continue
        for k, rows in where[p].items():
            for i in rows:
                for s in spaces:
                    out[k][s][i] = result[k][s]
    if failures:
        raise FeatureError(failures)
    for k in todo:
        if cache:
            plist, aug = jobs[k]
            _write_cache(folders[k], out[k], {"n": len(plist), "cfg": cfg.as_dict(),
                                              "spaces": spaces,
                                              "augment": aug.as_dict() if aug else None})
        results[k] = out[k]


def _write_cache(folder: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write into a temporary sibling folder, then rename: a crash leaves no half cache."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp", dir=folder.parent))
    try:
        for s, arr in arrays.items():
            np.save(tmp / f"{s}.npy", arr)
        (tmp / "done.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same batch first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def extract_manifest(manifest: pd.DataFrame, **kwargs) -> dict[str, np.ndarray]:
    """`extract_paths` over a manifest's ``path`` column (same keyword arguments)."""
    return extract_paths(list(manifest["path"]), **kwargs)
