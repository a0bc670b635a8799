"""Prediction: a bundle turned into probabilities for any clip, and the whole chain the
Predict page and ``python -m ser predict`` share.

The clip goes through `ser.audio.load_audio` and the same feature code as training, with
the bundle's own feature config and normalisation. A clip longer than the model's window
(216 frames ≈ 5 s) is scored in half-overlapping windows whose probabilities are averaged;
the per-window scores are kept for an emotion-over-time view.

`open_clip` decodes an upload once (level, clipping, spectrogram); `score_clip` runs every
chosen model on it and returns the ensemble verdict, agreement and per-model detail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ser import config
from ser.audio import QualityReport, info, load_audio, quality_report, resample
from ser.bundle import Bundle, BundleError, load_bundle
from ser.card import Card
from ser.dataset import model_inputs, spaces_for
from ser.features import clip_features, fs2


@dataclass
class Prediction:
    """Probabilities for one clip (label order `ser.config.LABELS`) and per-window detail."""

    probs: np.ndarray  # (C,)
    window_probs: np.ndarray  # (W, C)
    window_starts_s: np.ndarray  # (W,)
    window_s: float

    @property
    def label(self) -> str:
        return config.LABELS[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))

    def as_dict(self) -> dict:
        return {"label": self.label, "confidence": self.confidence,
                "probs": dict(zip(config.LABELS, map(float, self.probs))),
                "windows": [{"start_s": float(s), "probs": dict(zip(config.LABELS,
                                                                    map(float, p)))}
                            for s, p in zip(self.window_starts_s, self.window_probs)]}


class Predictor:
    """Wraps a bundle (path, bytes or loaded `Bundle`) for prediction on CPU or GPU."""

    def __init__(self, source: str | Path | bytes | Bundle, device: str = "cpu"):
        self.bundle = source if isinstance(source, Bundle) else load_bundle(source)
        self.card: Card = self.bundle.card
        self.device = torch.device(device)
        self.model = self.bundle.model.to(self.device).eval()
        self.cfg = self.card.features
        self.space = self.card.input_space
        self.norm = self.bundle.normalisation

    @property
    def name(self) -> str:
        return self.bundle.name

    def windows(self, y: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Split samples into model-sized windows (hop = half a window)."""
        win = self.cfg.fs2_frames * self.cfg.hop_length
        hop = win // 2
        if len(y) <= win:
            return [y], np.zeros(1)
        starts = list(range(0, len(y) - win + 1, hop))
        if starts[-1] + win < len(y):  # cover the tail too
            starts.append(len(y) - win)
        return [y[s:s + win] for s in starts], np.asarray(starts) / self.cfg.sample_rate

    def predict_samples(self, y: np.ndarray, sr: int) -> Prediction:
        """Probabilities for mono float samples ``y`` at ``sr`` Hz."""
        if sr != self.cfg.sample_rate:
            y = resample(np.asarray(y, dtype=np.float32), sr, self.cfg.sample_rate)
        chunks, starts = self.windows(np.asarray(y, dtype=np.float32))
        spaces = spaces_for(self.space)
        per_chunk = [clip_features(c, cfg=self.cfg, spaces=spaces) for c in chunks]
        arrays = {s: np.stack([f[s] for f in per_chunk]) for s in spaces}
        inputs = [x.to(self.device) for x in model_inputs(arrays, self.space, self.norm)]
        with torch.inference_mode():
            probs = torch.softmax(self.model(*inputs).float(), dim=1).cpu().numpy()
        return Prediction(probs.mean(axis=0), probs, starts, self.cfg.window_seconds)

    def predict(self, source) -> Prediction:
        """Probabilities for a path, bytes or file-like clip (raises `AudioError`)."""
        y, sr = load_audio(source, sr=self.cfg.sample_rate)
        return self.predict_samples(y, sr)


def ensemble(predictions: list[Prediction], weights: list[float] | None = None) -> np.ndarray:
    """Weighted mean of several models' probabilities (equal weights by default)."""
    p = np.stack([x.probs for x in predictions])
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    return (p * w[:, None]).sum(0) / w.sum()


def agreement(predictions: list[Prediction]) -> float:
    """Share of models whose top label equals the most common top label."""
    if not predictions:
        return 0.0
    labels = [p.label for p in predictions]
    return max(labels.count(lab) for lab in set(labels)) / len(labels)


# ------------------------------------------------------------------------ the Predict chain

@dataclass
class Clip:
    """A decoded upload: the samples at their own rate, the models' rate, and what the page
    shows about it before any model runs."""

    name: str
    y: np.ndarray
    sr: int
    channels: int
    quality: QualityReport
    y_model: np.ndarray  # at config.SAMPLE_RATE
    mel_db: np.ndarray  # whole-clip log-mel (n_mels, frames)


def open_clip(source, name: str = "clip") -> Clip:
    """Decode ``source`` once and check it (raises `ser.audio.AudioError` naming the
    problem: empty, not audio, truncated, too long ...)."""
    meta = info(source)
    y, sr = load_audio(source, sr=None)
    y_model = resample(y, sr, config.SAMPLE_RATE)
    return Clip(name, y, sr, meta.channels, quality_report(y, sr, meta.channels), y_model,
                fs2(y_model, frames=0))


@dataclass
class ModelResult:
    name: str
    card: Card
    prediction: Prediction


@dataclass
class ClipScores:
    """Everything the Predict page draws about the models' view of one clip."""

    results: list[ModelResult]
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def predictions(self) -> list[Prediction]:
        return [r.prediction for r in self.results]

    @property
    def probs(self) -> np.ndarray:
        return ensemble(self.predictions)

    @property
    def verdict(self) -> str:
        return config.LABELS[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))

    @property
    def agreement(self) -> float:
        return agreement(self.predictions)

    def timeline(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """``(window starts, mean window probabilities, window seconds)`` when the clip was
        scored in several windows, else None."""
        preds = self.predictions
        if not any(len(p.window_probs) > 1 for p in preds):
            return None
        longest = max(preds, key=lambda p: len(p.window_probs))
        same = [p.window_probs for p in preds if len(p.window_probs) == len(longest.window_probs)]
        return longest.window_starts_s, np.mean(same, axis=0), longest.window_s

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"model": r.name, "prediction": r.prediction.label,
                              **{lab: round(float(v), 3) for lab, v in
                                 zip(config.LABELS, r.prediction.probs)}}
                             for r in self.results])


def score_clip(clip: Clip, predictors: list[tuple[str, Callable[[], Predictor]]], *,
               progress: Callable[[int, int], None] | None = None) -> ClipScores:
    """Score ``clip`` with every model. ``predictors`` are ``(name, loader)`` pairs; a model
    that cannot be loaded is reported in ``errors`` and the others still run."""
    out = ClipScores([])
    for i, (name, get) in enumerate(predictors, 1):
        try:
            p = get()
            out.results.append(ModelResult(name, p.card, p.predict_samples(
                clip.y_model, config.SAMPLE_RATE)))
        except BundleError as err:
            out.errors.append((name, str(err)))
        if progress:
            progress(i, len(predictors))
    return out
