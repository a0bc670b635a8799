"""Predictor: a bundle turned into probabilities for any clip.

The clip goes through `ser.audio.load` and the same feature code as training, with the
bundle's own feature config and normalisation. A clip longer than the model's window
(216 frames ≈ 5 s) is scored in half-overlapping windows whose probabilities are averaged;
the per-window scores are kept for an emotion-over-time view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ser import config
from ser.bundle import Bundle, load
from ser.features import FeatureConfig


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
        self.bundle = source if isinstance(source, Bundle) else load(source)
        self.card = self.bundle.card
        self.device = torch.device(device)
        self.model = self.bundle.model.to(self.device).eval()
        self.cfg = FeatureConfig.from_dict(self.card["feature_config"])
        self.space = self.card["input_space"]
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
        from ser.audio import resample
        from ser.features import clip_features
        from ser.training import normalise

        if sr != self.cfg.sample_rate:
            y = resample(np.asarray(y, dtype=np.float32), sr, self.cfg.sample_rate)
        chunks, starts = self.windows(np.asarray(y, dtype=np.float32))
        spaces = {"fs1": ("fs1",), "fs2": ("fs2",), "fs1+fs2": ("fs1", "fs2")}[self.space]
        feats = {s: [] for s in spaces}
        for c in chunks:
            f = clip_features(c, self.cfg, spaces)
            for s in spaces:
                feats[s].append(f[s])
        inputs = [normalise(s, np.stack(feats[s]), self.norm[s]).to(self.device)
                  for s in spaces]
        with torch.inference_mode():
            probs = torch.softmax(self.model(*inputs).float(), dim=1).cpu().numpy()
        return Prediction(probs.mean(axis=0), probs, starts, self.cfg.window_seconds)

    def predict(self, source) -> Prediction:
        """Probabilities for a path, bytes or file-like clip (raises `AudioError`)."""
        from ser.audio import load as load_audio

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
