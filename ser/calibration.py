"""Make the models' confidence honest: temperature scaling, calibration error, "uncertain".

A network trained with cross-entropy is usually over-confident: among the predictions it
makes with 90 % confidence, far fewer than 90 % are right. The app shows confidences to
people, so they should mean what they say. This module

* fits a single temperature ``T`` on validation data (Guo et al., 2017, "On Calibration
  of Modern Neural Networks") and applies it, which changes confidences but never the
  predicted class;
* measures calibration (expected calibration error and the reliability curve behind the
  reliability diagram);
* picks a confidence threshold below which the app says "uncertain" instead of naming an
  emotion;
* bundles the result in :class:`Calibration`, a JSON-ready record for model cards.

Pure numpy + scipy; no torch.

Logits or log-probabilities
---------------------------
Temperature scaling divides the logits ``z`` by ``T`` before the softmax. Log-probabilities
``log softmax(z) = z - logsumexp(z)`` differ from the logits by a per-row constant, which
the softmax ignores, so ``softmax(z / T) == softmax(log_softmax(z) / T)``: the functions
here accept either. That is also the standard way to calibrate an ensemble whose output
is an average of probabilities: take ``log(mean probs)`` and treat it as logits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = [
    "Calibration",
    "ThresholdChoice",
    "apply_temperature",
    "calibrate",
    "choose_uncertainty_threshold",
    "expected_calibration_error",
    "fit_temperature",
    "log_probs",
    "nll",
    "prediction_arrays",
    "reliability_for",
    "reliability_from",
    "reliability_curve",
]

#: Search range of the temperature. Below 0.05 or above 20 the model is either made
#: absurdly sharp or flat; hitting a bound signals a problem with the validation data.
T_MIN, T_MAX = 0.05, 20.0
#: Floor applied to probabilities before taking logs (log 0 = -inf would poison the fit).
_EPS = 1e-12


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


def _scores(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"{name} must have shape (N, C) with C >= 2, got {x.shape}")
    return x


def _labels(y: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    if n and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must hold integer class indices in [0, {n_classes})")
    return y.astype(np.int64)


def _probs(probs: np.ndarray) -> np.ndarray:
    p = _scores(probs, "probs")
    if np.any(p < -1e-6) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs must be non-negative rows that sum to 1 (softmax outputs)")
    return p


def _log_softmax(z: np.ndarray) -> np.ndarray:
    # Subtracting the row maximum keeps exp() from overflowing for large logits.
    m = np.max(z, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    shifted = z - m
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


# --------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------


def apply_temperature(log_probs: np.ndarray, T: float) -> np.ndarray:
    """Softmax of ``log_probs / T``: the calibrated class probabilities.

    Parameters
    ----------
    log_probs : np.ndarray, shape (N, C)
        Logits or log-probabilities (equivalent here, see the module docstring).
        ``-inf`` entries (a class with probability exactly 0) stay at probability 0.
    T : float
        Temperature; ``T > 1`` softens, ``T < 1`` sharpens, ``T == 1`` is the identity
        on probabilities.

    Returns
    -------
    np.ndarray, float64, shape (N, C)
        Rows sum to 1. The arg-max of every row is unchanged.
    """
    if not T > 0 or not math.isfinite(T):
        raise ValueError(f"temperature must be a positive finite number, got {T!r}")
    z = _scores(log_probs, "log_probs")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("log_probs contains NaN or +inf")
    return np.exp(_log_softmax(z / T))


def nll(log_probs: np.ndarray, y: np.ndarray, T: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes after temperature ``T``."""
    z = _scores(log_probs, "log_probs")
    y = _labels(y, len(z), z.shape[1])
    if not len(y):
        raise ValueError("need at least one example")
    lp = _log_softmax(z / T)
    return float(-np.mean(np.maximum(lp[np.arange(len(y)), y], math.log(_EPS))))


def fit_temperature(logits_or_log_probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature that minimises the validation negative log-likelihood.

    Parameters
    ----------
    logits_or_log_probs : np.ndarray, shape (N, C)
        Held-out scores: raw logits, or log-probabilities (e.g. ``np.log`` of an
        ensemble's averaged probabilities; a per-row shift does not change the softmax).
    y : np.ndarray, shape (N,)
        True class indices.

    Returns
    -------
    float
        ``T`` in ``[T_MIN, T_MAX]`` = [0.05, 20]. The NLL is minimised over ``log T``
        with a bounded scalar search (Brent's method), which is smooth and reliable for
        a single parameter even with a few hundred examples. ``T > 1`` means the model
        was over-confident.

    Notes
    -----
    With a validation set the model classifies perfectly, the NLL keeps falling as
    ``T -> 0``, so the fit ends at ``T_MIN``; with one it gets entirely wrong, at
    ``T_MAX``. Both say the validation set cannot calibrate the model.
    """
    z = _scores(logits_or_log_probs, "logits_or_log_probs")
    y = _labels(y, len(z), z.shape[1])
    if not len(y):
        raise ValueError("need at least one validation example to fit a temperature")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("logits_or_log_probs contains NaN or +inf")
    # Searching log T treats "twice as sharp" and "twice as soft" symmetrically.
    res = minimize_scalar(lambda s: nll(z, y, math.exp(s)),
                          bounds=(math.log(T_MIN), math.log(T_MAX)), method="bounded",
                          options={"xatol": 1e-5})
    T = math.exp(float(res.x))
    # The bounded search stops a little inside the bounds; snap to a bound when that is
    # no worse, so "hit the bound" is reported as exactly the bound.
    for bound in (T_MIN, T_MAX):
        if nll(z, y, bound) <= nll(z, y, T):
            T = bound
    return T


# --------------------------------------------------------------------------------------
# Measuring calibration
# --------------------------------------------------------------------------------------


def reliability_curve(probs: np.ndarray, y: np.ndarray, *, n_bins: int = 15) -> dict:
    """Accuracy against confidence, per confidence bin, for a reliability diagram.

    Parameters
    ----------
    probs : np.ndarray, shape (N, C)
        Class probabilities (rows sum to 1).
    y : np.ndarray, shape (N,)
        True class indices.
    n_bins : int
        Equal-width bins over [0, 1]. A confidence equal to a bin's upper edge falls in
        that bin (bins are ``(lower, upper]``; the first also takes 0).

    Returns
    -------
    dict of lists, one entry per bin (``pandas.DataFrame(result)`` gives the table)
        ``lower``, ``upper``: bin edges; ``count``: predictions whose confidence (top
        probability) falls in the bin; ``confidence``: their mean confidence;
        ``accuracy``: the fraction of them that are correct. ``confidence`` and
        ``accuracy`` are NaN for empty bins. ``count`` sums to N.
    """
    p = _probs(probs)
    y = _labels(y, len(p), p.shape[1])
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") puts a value equal to an edge in the bin below it.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {
        "lower": edges[:-1].tolist(),
        "upper": edges[1:].tolist(),
        "count": count.astype(int).tolist(),
        "confidence": mean_conf.tolist(),
        "accuracy": acc.tolist(),
    }


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, *, n_bins: int = 15
                               ) -> float:
    """Expected calibration error (ECE) of the top-class confidence.

    ``sum over bins of (count / N) * |accuracy - mean confidence|`` with the bins of
    :func:`reliability_curve`: 0 for perfectly calibrated, up to 1.

    On a finite sample ECE is biased upwards, because each bin's accuracy is noisy: in
    simulations of a perfectly calibrated 6-class model (15 bins) it averaged 0.064 for
    N = 300, 0.037 for N = 1000 and 0.016 for N = 5000. Compare ECEs measured on the same
    data rather than reading a small one as absolute truth.
    """
    curve = reliability_curve(probs, y, n_bins=n_bins)
    count = np.asarray(curve["count"], dtype=np.float64)
    n = count.sum()
    if n == 0:
        raise ValueError("need at least one example")
    gap = np.abs(np.asarray(curve["accuracy"]) - np.asarray(curve["confidence"]))
    return float(np.sum(np.where(count > 0, count * np.nan_to_num(gap), 0.0)) / n)


# --------------------------------------------------------------------------------------
# "Uncertain"
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdChoice:
    """A confidence threshold and what it does on the validation data it was chosen on.

    ``threshold``: predictions with confidence ``>= threshold`` are shown; the rest are
    reported as "uncertain". ``precision_above``: accuracy of the shown predictions.
    ``coverage``: fraction of predictions shown. ``met_target``: whether
    ``precision_above`` reaches the target precision.
    """

    threshold: float
    precision_above: float
    coverage: float
    met_target: bool

    def as_dict(self) -> dict:
        return asdict(self)


def choose_uncertainty_threshold(probs: np.ndarray, y: np.ndarray, *,
                                 target_precision: float = 0.7, min_kept: int = 10
                                 ) -> ThresholdChoice:
    """Lowest confidence threshold whose kept predictions are right often enough.

    The rule: sort validation predictions by confidence. For every candidate threshold
    ``t`` (each observed confidence), the kept set is the predictions with confidence
    ``>= t``. Choose the smallest ``t`` whose kept set holds at least ``min_kept``
    predictions and is at least ``target_precision`` correct; being the smallest, it
    keeps the most predictions (highest coverage) among thresholds that meet the target.

    If no threshold meets the target (the model is too weak), the threshold with the
    highest precision among those keeping ``min_kept`` predictions is returned with
    ``met_target=False``: the app should then treat most answers as uncertain. If the
    model already meets the target on everything, the threshold is 0.0 (never uncertain).

    Parameters
    ----------
    probs : np.ndarray, shape (N, C)
        Calibrated validation probabilities (apply the temperature first).
    y : np.ndarray, shape (N,)
        True class indices.
    target_precision : float
        Required accuracy of the predictions that are shown, e.g. 0.7 for "right at
        least 70 % of the time".
    min_kept : int
        Smallest kept set a threshold is judged on (capped at N), so that the choice
        does not rest on two or three lucky predictions at the very top.

    Returns
    -------
    ThresholdChoice
    """
    p = _probs(probs)
    y = _labels(y, len(p), p.shape[1])
    n = len(y)
    if n == 0:
        raise ValueError("need at least one validation example")
    if not 0.0 < target_precision <= 1.0:
        raise ValueError("target_precision must be in (0, 1]")
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    if correct.mean() >= target_precision:
        return ThresholdChoice(0.0, float(correct.mean()), 1.0, True)

    order = np.argsort(-conf, kind="stable")
    conf_sorted, correct_sorted = conf[order], correct[order]
    kept = np.arange(1, n + 1)
    precision = np.cumsum(correct_sorted) / kept
    # Ties: a threshold keeps every prediction with that confidence, so only the last
    # position of each run of equal confidences is a real candidate.
    last_of_run = np.append(conf_sorted[1:] != conf_sorted[:-1], True)
    candidate = last_of_run & (kept >= min(max(min_kept, 1), n))
    meets = candidate & (precision >= target_precision - 1e-12)
    if meets.any():
        i = int(np.flatnonzero(meets)[-1])  # lowest threshold = most kept
        return ThresholdChoice(float(conf_sorted[i]), float(precision[i]), kept[i] / n, True)
    cands = np.flatnonzero(candidate)
    # Highest precision; among ties, the lowest threshold (keeps more).
    i = int(cands[np.lexsort((-kept[cands], -precision[cands]))[0]])
    return ThresholdChoice(float(conf_sorted[i]), float(precision[i]), kept[i] / n, False)


# --------------------------------------------------------------------------------------
# The record stored in model cards
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """How a model's confidences were calibrated, as stored in its model card.

    ``temperature``: divide logits/log-probabilities by it (:func:`apply_temperature`).
    ``threshold``: calibrated confidence below which a prediction is shown as
    "uncertain". ``ece_before`` / ``ece_after``: validation ECE without / with the
    temperature. ``n_val``: validation examples used. ``method``: "temperature".
    Optional (absent from records written before they existed): ``target_precision``, the
    accuracy the threshold was chosen to guarantee on validation data; ``coverage``, the
    share of validation predictions at or above the threshold; ``precision_above``, their
    accuracy.
    """

    temperature: float
    threshold: float
    ece_before: float
    ece_after: float
    n_val: int
    method: str = "temperature"
    target_precision: float | None = None
    coverage: float | None = None
    precision_above: float | None = None

    _OPTIONAL = ("target_precision", "coverage", "precision_above")

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (floats, int, str); optional facts only when known."""
        out = {"temperature": float(self.temperature), "threshold": float(self.threshold),
               "ece_before": float(self.ece_before), "ece_after": float(self.ece_after),
               "n_val": int(self.n_val), "method": str(self.method)}
        for key in self._OPTIONAL:
            value = getattr(self, key)
            if value is not None:
                out[key] = float(value)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Inverse of :meth:`to_dict`; unknown keys (from newer versions) are ignored."""
        missing = {"temperature", "threshold", "ece_before", "ece_after", "n_val"} - set(d)
        if missing:
            raise ValueError(f"calibration record lacks {sorted(missing)}")
        optional = {k: float(d[k]) for k in cls._OPTIONAL if d.get(k) is not None}
        return cls(temperature=float(d["temperature"]), threshold=float(d["threshold"]),
                   ece_before=float(d["ece_before"]), ece_after=float(d["ece_after"]),
                   n_val=int(d["n_val"]), method=str(d.get("method", "temperature")),
                   **optional)

    def probs(self, log_probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for new logits or log-probabilities."""
        return apply_temperature(log_probs, self.temperature)

    def is_uncertain(self, probs: np.ndarray) -> np.ndarray:
        """Boolean per row of calibrated ``probs``: top confidence below the threshold."""
        return np.asarray(probs).max(axis=-1) < self.threshold


def calibrate(log_probs: np.ndarray, y: np.ndarray, *, target_precision: float = 0.7,
              n_bins: int = 15) -> Calibration:
    """Fit the temperature and the uncertainty threshold on validation data in one go.

    ``log_probs`` are validation logits or log-probabilities, ``y`` the true classes.
    The threshold is chosen on the temperature-scaled probabilities, so it applies to
    the confidences the app shows.
    """
    z = _scores(log_probs, "log_probs")
    T = fit_temperature(z, y)
    before = apply_temperature(z, 1.0)
    after = apply_temperature(z, T)
    choice = choose_uncertainty_threshold(after, y, target_precision=target_precision)
    return Calibration(
        temperature=T,
        threshold=choice.threshold,
        ece_before=expected_calibration_error(before, y, n_bins=n_bins),
        ece_after=expected_calibration_error(after, y, n_bins=n_bins),
        n_val=len(z),
        target_precision=target_precision,
        coverage=choice.coverage,
        precision_above=choice.precision_above,
    )


# --------------------------------------------------------------------------------------
# Stored predictions (val_predictions.csv, predictions.csv) and reliability diagrams
# --------------------------------------------------------------------------------------

#: Floor put under stored probabilities before taking logs. The CSV files keep five
#: decimals, so a stored 0 only says "below 5e-6"; flooring at 1e-6 keeps the log finite
#: without inventing mass the model might have had.
PROB_FLOOR = 1e-6


def prediction_arrays(frame) -> tuple[np.ndarray, np.ndarray]:
    """``(probs (N, C), y (N,))`` from a per-clip predictions table.

    ``frame`` is a pandas DataFrame with a ``true`` column (label names) and one
    ``p_<label>`` column per label of :data:`ser.config.LABELS`, as written in
    ``val_predictions.csv`` and ``predictions.csv``. Rows are renormalised (the files keep
    five decimals, so they sum to 1 only up to rounding).
    """
    from ser import config

    cols = [f"p_{lab}" for lab in config.LABELS]
    missing = [c for c in [*cols, "true"] if c not in frame.columns]
    if missing:
        raise ValueError(f"the predictions table lacks columns {missing}")
    index = {lab: i for i, lab in enumerate(config.LABELS)}
    unknown = sorted(set(frame["true"]) - set(index))
    if unknown:
        raise ValueError(f"the predictions table has unknown labels {unknown}")
    p = frame[cols].to_numpy(dtype=np.float64)
    p = np.clip(p, 0.0, None)
    p = p / p.sum(axis=1, keepdims=True)
    return p, frame["true"].map(index).to_numpy(dtype=np.int64)


def log_probs(probs: np.ndarray) -> np.ndarray:
    """Log of (stored) probabilities, floored at :data:`PROB_FLOOR`: logits for fitting."""
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), PROB_FLOOR))


def reliability_from(probs: np.ndarray, y: np.ndarray, calibration: Calibration | None, *,
                     after: np.ndarray | None = None, name: str = "", part: str = "",
                     n_bins: int = 15) -> dict:
    """Reliability curves and ECE of ``probs`` before and (with ``calibration``) after
    calibration; the dict :func:`reliability_for` returns. ``after`` gives the calibrated
    probabilities directly when they are not simply ``calibration`` applied to ``probs``
    (an ensemble whose members are calibrated first)."""
    p = _probs(probs)
    curves = {"before calibration": reliability_curve(p, y, n_bins=n_bins)}
    ece = {"before": expected_calibration_error(p, y, n_bins=n_bins), "after": None}
    if calibration is not None:
        q = calibration.probs(log_probs(p)) if after is None else _probs(after)
        curves["after calibration"] = reliability_curve(q, y, n_bins=n_bins)
        ece["after"] = expected_calibration_error(q, y, n_bins=n_bins)
    return {"name": name, "part": part, "n": int(len(p)),
            "calibration": calibration.to_dict() if calibration else None,
            "curves": curves, "ece": ece}


def reliability_for(entry, *, part: str = "test", n_bins: int = 15) -> dict:
    """Reliability data of a trained model, for the Results page.

    Parameters
    ----------
    entry : ser.zoo.ModelEntry
        Anything with ``name``, ``card.calibration`` (a :meth:`Calibration.to_dict`
        record or None) and ``predictions(part)`` returning the stored per-clip
        probabilities (or None).
    part : str
        ``"test"`` (default): the held-out test clips, which the temperature was *not*
        fitted on, so "after" is an honest check. Falls back to ``"val"`` (the clips it
        was fitted on) when the model has no test predictions.
    n_bins : int
        Equal-width confidence bins.

    Returns
    -------
    dict
        ``name``; ``part`` (the clips actually used, "test" or "val"); ``n``;
        ``calibration`` (the card's record or None); ``curves``: ``{"before calibration":
        curve, "after calibration": curve}`` (:func:`reliability_curve` dicts; "after" only
        for a calibrated model), ready for ``ser.plots.reliability_diagram``; ``ece``:
        ``{"before": float, "after": float | None}`` on those clips.

    Raises
    ------
    ValueError
        If the model has no stored predictions, or its calibration record is malformed.
    """
    used, frame = part, entry.predictions(part)
    if frame is None and part == "test":
        used, frame = "val", entry.predictions("val")
    if frame is None:
        raise ValueError(f"{entry.name} has no stored per-clip predictions to draw a "
                         "reliability diagram from.")
    record = entry.card.calibration
    calibration = Calibration.from_dict(record) if record else None
    probs, y = prediction_arrays(frame)
    return reliability_from(probs, y, calibration, name=entry.name, part=used, n_bins=n_bins)
