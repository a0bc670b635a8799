"""Data augmentation: waveform copies for training clips, SpecAugment for spectrogram batches.

Waveform augmentation makes one extra copy of each training clip (the Keras notebook
seed's recipe), or several, with every enabled transform applied. Copies are generated only
from training rows, so an augmented copy never lands in validation or test. Each copy's
random draws are seeded from the run seed, the clip's name and the copy's index, so a copy
is the same every run and two copies of one clip differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from ser import config


@dataclass(frozen=True)
class AugmentConfig:
    """Which waveform transforms make the augmented copy; all off means no copy."""

    noise: bool = False
    noise_factor: float = config.NOISE_FACTOR
    pitch: bool = False
    pitch_semitones: float = 2.0  # drawn uniformly in ±this
    stretch: bool = False
    stretch_range: float = 0.1  # rate drawn uniformly in 1 ± this
    seed: int = 0
    copy: int = 0  # which copy of a clip (0 = the first); salts the per-clip draws

    @property
    def enabled(self) -> bool:
        return self.noise or self.pitch or self.stretch

    def as_dict(self) -> dict:
        d = asdict(self)
        if not self.copy:
            # The first copy is defined exactly as before copies were numbered, so its
            # cached features (keyed by this dict) and its waveforms stay the same.
            del d["copy"]
        return d

    def describe(self) -> str:
        parts = []
        if self.noise:
            parts.append(f"white noise ×{self.noise_factor:g}")
        if self.pitch:
            parts.append(f"pitch ±{self.pitch_semitones:g} st")
        if self.stretch:
            parts.append(f"stretch ±{self.stretch_range:.0%}")
        return ", ".join(parts) if parts else "none"


def clip_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the run seed and the clip, not on processing order."""
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def add_noise(y: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """``y + factor · N(0, 1)``: the seed's additive white noise."""
    return (y + factor * rng.standard_normal(len(y))).astype(np.float32)


def augment_waveform(y: np.ndarray, sr: int, aug: AugmentConfig, key: str) -> np.ndarray:
    """Apply every enabled transform of ``aug`` to mono ``y`` (seeded by ``key``)."""
    import librosa

    rng = clip_rng(aug.seed, key if not aug.copy else f"{key}#{aug.copy}")
    out = np.asarray(y, dtype=np.float32)
    if aug.stretch:
        rate = 1.0 + rng.uniform(-aug.stretch_range, aug.stretch_range)
        out = librosa.effects.time_stretch(out, rate=rate)
    if aug.pitch:
        steps = rng.uniform(-aug.pitch_semitones, aug.pitch_semitones)
        out = librosa.effects.pitch_shift(out, sr=sr, n_steps=steps)
    if aug.noise:
        out = add_noise(out, aug.noise_factor, rng)
    return out.astype(np.float32)


def spec_augment(x, *, freq_masks: int = 2, freq_width: int = 12, time_masks: int = 2,
                 time_width: int = 24, generator=None):
    """SpecAugment on a batch of spectrograms ``(B, 1, F, T)`` (torch), masks set to 0.

    Inputs are standardised, so 0 is the training mean: a mask hides information without
    inventing an extreme value. Device-agnostic: masks are built on ``x.device``.
    """
    import torch

    b, _, f, t = x.shape
    out = x.clone()
    dev = x.device
    for size, width, axis in ((f, freq_width, 2), (t, time_width, 3)):
        n = freq_masks if axis == 2 else time_masks
        for _ in range(n):
            w = torch.randint(0, width + 1, (b,), device=dev, generator=generator)
            start = (torch.rand(b, device=dev, generator=generator) * (size - w).clamp(min=1)
                     ).long()
            pos = torch.arange(size, device=dev)[None, :]
            mask = (pos >= start[:, None]) & (pos < (start + w)[:, None])  # (B, size)
            if axis == 2:
                out = out.masked_fill(mask[:, None, :, None], 0.0)
            else:
                out = out.masked_fill(mask[:, None, None, :], 0.0)
    return out


def shift_augment(x, *, freq: int = 0, time: float = 0.0, generator=None):
    """Random per-example shifts of a spectrogram batch ``(B, 1, F, T)`` (torch).

    ``freq``: each example moves up or down by up to this many mel bands; the band that
    leaves the edge is dropped and the vacated rows repeat the edge band. A shift of a few
    mel bands moves every harmonic and formant by the same ratio, which is roughly what a
    different speaker's pitch and vocal-tract length do, so the model cannot key on one
    speaker's frequency positions. ``time``: each example is rotated in time by up to this
    fraction of its frames (either way); the padding at the end of short clips then moves
    around the speech instead of always following it. Device-agnostic.
    """
    import torch

    b, _, f, t = x.shape
    dev = x.device
    out = x
    if freq > 0:
        k = torch.randint(-freq, freq + 1, (b,), device=dev, generator=generator)
        src = (torch.arange(f, device=dev)[None, :] - k[:, None]).clamp(0, f - 1)  # (B, F)
        out = torch.gather(out, 2, src[:, None, :, None].expand(b, 1, f, t))
    if time > 0:
        m = max(1, int(round(time * t)))
        k = torch.randint(-m, m + 1, (b,), device=dev, generator=generator)
        src = (torch.arange(t, device=dev)[None, :] - k[:, None]) % t  # (B, T)
        out = torch.gather(out, 3, src[:, None, None, :].expand(b, 1, f, t))
    return out if out is not x else x.clone()
