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
    #: A random recording chain (`channel_chain`): microphone/room colouring, band limits,
    #: reverberation, telephone-style companding and background noise.
    channel: bool = False
    seed: int = 0
    copy: int = 0  # which copy of a clip (0 = the first); salts the per-clip draws

    @property
    def enabled(self) -> bool:
        return self.noise or self.pitch or self.stretch or self.channel

    def as_dict(self) -> dict:
        d = asdict(self)
        if not self.copy:
            # The first copy is defined exactly as before copies were numbered, so its
            # cached features (keyed by this dict) and its waveforms stay the same.
            del d["copy"]
        if not self.channel:
            del d["channel"]  # likewise for configs written before the recording chain
        return d

    def describe(self) -> str:
        parts = []
        if self.noise:
            parts.append(f"white noise ×{self.noise_factor:g}")
        if self.pitch:
            parts.append(f"pitch ±{self.pitch_semitones:g} st")
        if self.stretch:
            parts.append(f"stretch ±{self.stretch_range:.0%}")
        if self.channel:
            parts.append("recording chain")
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
    if aug.channel:
        out = channel_chain(out, sr, rng)
    if aug.noise:
        out = add_noise(out, aug.noise_factor, rng)
    return out.astype(np.float32)


def _smooth_gain(freqs: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """A random magnitude response (linear gain per frequency) for one recording chain.

    Three parts, multiplied: a colouring (gains of ±8 dB at 7 points spaced evenly in
    log-frequency from 60 Hz to Nyquist, joined linearly in log-frequency, plus a tilt of
    ±3 dB per octave around 1 kHz) for the microphone, the room and the speaker's distance;
    a high-pass at 20–300 Hz; and a low-pass: telephone band (3.4 kHz) one time in four,
    otherwise anywhere from 4 kHz to Nyquist. Both filters are 4th-order
    Butterworth magnitudes.
    """
    nyq = sr / 2
    f = np.maximum(freqs, 1.0)
    logf = np.log2(f)
    anchors = np.linspace(np.log2(60.0), np.log2(nyq), 7)
    gains_db = rng.uniform(-8.0, 8.0, size=anchors.size)
    db = np.interp(logf, anchors, gains_db)
    db += rng.uniform(-3.0, 3.0) * (logf - np.log2(1000.0))
    hp = rng.uniform(20.0, 300.0)
    lp = 3400.0 if rng.random() < 0.25 else rng.uniform(4000.0, nyq)
    mag = 10 ** (np.clip(db, -30.0, 30.0) / 20)
    mag /= np.sqrt(1 + (hp / f) ** 8)
    mag /= np.sqrt(1 + (f / lp) ** 8)
    return mag


def _room_response(sr: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: the direct sound, then exponentially decaying
    noise with a reverberation time (RT60) of 0.15–0.8 s, 0–15 dB below the direct sound
    in energy (the direct-to-reverberant ratio)."""
    rt60 = rng.uniform(0.15, 0.8)
    n = int(min(rt60, 0.6) * sr)
    t = np.arange(1, n) / sr
    tail = rng.standard_normal(n - 1) * np.exp(-6.908 * t / rt60)  # 60 dB down at rt60
    drr_db = rng.uniform(0.0, 15.0)
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail ** 2)), 1e-12))
    return np.concatenate([[1.0], tail])


def _coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a power spectrum falling as 1/f^α, α in 0–2 (white to brown):
    hum, fans, traffic and room tone are mostly low-frequency."""
    alpha = rng.uniform(0.0, 2.0)
    spec = np.fft.rfft(rng.standard_normal(n))
    k = np.arange(spec.size, dtype=np.float64)
    k[0] = 1.0
    spec *= k ** (-alpha / 2)
    out = np.fft.irfft(spec, n)
    return out / (np.std(out) + 1e-12)


def speech_power(y: np.ndarray, frame: int = 512) -> float:
    """Mean power of the louder half of the frames: the speech, not the pauses."""
    m = len(y) // frame
    if m < 2:
        return float(np.mean(y ** 2))
    p = np.mean(y[: m * frame].reshape(m, frame) ** 2, axis=1)
    return float(np.mean(np.sort(p)[m // 2:]))


def channel_chain(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Pass mono ``y`` through a random recording chain, as a different microphone, room,
    phone line and place would; the same length and peak level come back.

    Stages (each draw from ``rng``): the magnitude response of `_smooth_gain` (always);
    a synthetic room (`_room_response`) one time in two; 8-bit μ-law companding, as on a
    G.711 phone line, one time in four; background noise (`_coloured_noise`) at a
    signal-to-noise ratio of 5–30 dB against the speech one time in two. The copies teach
    a model that these do not change the emotion.
    """
    from scipy.signal import fftconvolve

    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    peak = float(np.max(np.abs(y))) if n else 0.0
    if n < 16 or peak <= 0:
        return y.astype(np.float32)
    nfft = 1 << int(np.ceil(np.log2(n)))
    spec = np.fft.rfft(y, nfft)
    spec *= _smooth_gain(np.fft.rfftfreq(nfft, 1 / sr), rng, sr)
    out = np.fft.irfft(spec, nfft)[:n]
    if rng.random() < 0.5:
        out = fftconvolve(out, _room_response(sr, rng))[:n]
    if rng.random() < 0.25:
        scale = float(np.max(np.abs(out))) or 1.0
        mu = 255.0
        x = out / scale
        q = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127) / 127
        out = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * scale
    if rng.random() < 0.5:
        snr_db = rng.uniform(5.0, 30.0)
        power = speech_power(out)
        out = out + _coloured_noise(n, rng) * np.sqrt(power / 10 ** (snr_db / 10))
    top = float(np.max(np.abs(out)))
    if top > 0:
        out *= peak / top
    return out.astype(np.float32)


def random_floor(x, mean, std, *, low_db: float, high_db: float, generator=None):
    """Clip each standardised log-mel image of a batch ``(B, 1, F, T)`` (torch) at its own
    floor, drawn uniformly between ``low_db`` and ``high_db`` dB below the clip's peak.

    The images are FS2 in dB relative to each clip's maximum, standardised per band with
    ``mean`` and ``std`` (``(F,)`` tensors); a floor of ``d`` dB is therefore the value
    ``(-d - mean) / std`` in band terms. What lies below the drawn floor, the quiet part
    where one corpus's background noise and another's near-silence differ, is set to it.
    Device-agnostic.
    """
    import torch

    b = x.shape[0]
    u = torch.rand(b, device=x.device, generator=generator)
    floor_db = -(low_db + u * (high_db - low_db))  # (B,)
    z = (floor_db[:, None] - mean[None, :]) / std[None, :]  # (B, F)
    return torch.maximum(x, z[:, None, :, None].to(x.dtype))


def random_denoise(x, mean, std, *, p: float, top_db: float, percentile: float = 20.0,
                   max_oversubtract: float = 8.0, generator=None):
    """Remove the stationary noise floor from a random share ``p`` of a batch of
    standardised log-mel images ``(B, 1, F, T)`` (torch), each by its own strength.

    The opposite of `random_floor`: that one raises the quiet part of an image (a noisier
    recording), this one lowers it (a cleaner one). Per chosen clip and band, the
    ``percentile`` of the power over the clip's frames (padding at ``-top_db`` excluded)
    stands for the background noise; a factor drawn between 1 and ``max_oversubtract``
    times it is taken off every frame's power (spectral subtraction, as
    `ser.features.floor_subtract` does for a whole corpus), and the rest goes back in dB
    relative to the new peak, clipped at ``-top_db``. A network trained on both then sees
    each emotion of a noisy corpus (CREMA-D) with a studio's near-silence as well. Clips
    left with nothing come back unchanged. Device-agnostic.
    """
    import torch

    b, _, f, t = x.shape
    dev = x.device
    chosen = torch.rand(b, device=dev, generator=generator) < p
    alpha = 1.0 + torch.rand(b, device=dev, generator=generator) * (max_oversubtract - 1.0)
    if not bool(chosen.any()):
        return x
    m, s = mean[None, None, :, None], std[None, None, :, None]
    idx = chosen.nonzero(as_tuple=True)[0]
    db = (x[idx].float() * s + m).clamp(min=-top_db)  # (n, 1, F, T) in dB re peak
    real = db.amax(dim=2, keepdim=True) > -top_db + 0.01  # (n, 1, 1, T): not padding
    power = torch.pow(10.0, db / 10.0)
    ranked = torch.where(real, power, torch.full_like(power, float("inf"))).sort(dim=3).values
    n_real = real.sum(dim=3, keepdim=True)  # (n, 1, 1, 1)
    k = ((n_real - 1).clamp(min=0).float() * (percentile / 100.0)).long()
    noise = ranked.gather(3, k.expand(-1, 1, f, 1))  # (n, 1, F, 1)
    noise = torch.where(n_real > 0, noise, torch.zeros_like(noise))
    left = (power - alpha[idx][:, None, None, None] * noise).clamp(min=0) * real
    peak = left.amax(dim=(2, 3), keepdim=True)
    out = 10.0 * torch.log10(left.clamp(min=1e-30) / peak.clamp(min=1e-30))
    out = out.clamp(min=-top_db)
    out = torch.where(peak > 0, out, db)  # nothing left: keep the clip as it was
    res = x.clone()
    res[idx] = ((out - m) / s).to(x.dtype)
    return res


def freq_mixstyle(x, rng, *, p: float, alpha: float = 0.3, eps: float = 1e-5):
    """Frequency-wise MixStyle on a batch of log-mel images ``(B, 1, F, T)`` (torch).

    With probability ``p`` per batch, every image keeps its course in time within each
    mel band but takes on a mixed "colour": its per-band mean and standard deviation over
    time are replaced by ``lam`` times its own plus ``1 - lam`` times those of another
    image of the batch (a random pairing), ``lam`` drawn per image from Beta(``alpha``,
    ``alpha``). The per-band level and spread are where a microphone, a room and a voice's
    timbre show in a log-mel image; mixing them between clips of different speakers and
    corpora makes them an unreliable cue, while the label stays with the image's own
    course in time. After Zhou et al. (2021, MixStyle), applied to frequency bands as in
    acoustic scene classification across recording devices (Schmid et al., DCASE 2022).

    ``rng`` (a NumPy Generator) draws the coin, the pairing and the ``lam`` values, so a
    seeded run repeats on any device; statistics are taken in float32.
    """
    import torch

    b = x.shape[0]
    if b < 2 or p <= 0 or rng.random() >= p:
        return x
    lam = torch.as_tensor(rng.beta(alpha, alpha, size=b), dtype=torch.float32,
                          device=x.device).view(b, 1, 1, 1)
    perm = torch.as_tensor(rng.permutation(b), device=x.device)
    xf = x.float()
    mu = xf.mean(dim=3, keepdim=True)  # (B, 1, F, 1)
    sig = (xf.var(dim=3, keepdim=True) + eps).sqrt()
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sig_mix = lam * sig + (1 - lam) * sig[perm]
    return ((xf - mu) / sig * sig_mix + mu_mix).to(x.dtype)


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
