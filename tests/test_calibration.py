"""Known-answer tests for ser.calibration (temperature scaling, ECE, uncertainty threshold)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser import calibration as cal


def _sample_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw each true label from its row's probabilities: a perfectly calibrated model."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)


def _calibrated_set(n: int, seed: int, n_classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, n_classes)) * 2.0
    return logits, _sample_labels(cal.apply_temperature(logits, 1.0), rng)


# --------------------------------------------------------------------------------------
# apply_temperature
# --------------------------------------------------------------------------------------


def test_apply_temperature_is_softmax_and_keeps_the_argmax():
    z = np.array([[2.0, 1.0, 0.0], [-1.0, 3.0, 0.5]])
    p1 = cal.apply_temperature(z, 1.0)
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p1, expected, rtol=1e-12)
    for T in (0.3, 2.0, 10.0):
        pT = cal.apply_temperature(z, T)
        np.testing.assert_allclose(pT.sum(axis=1), 1.0)
        assert (pT.argmax(axis=1) == z.argmax(axis=1)).all()
    # Higher temperature means lower top confidence.
    assert (cal.apply_temperature(z, 3.0).max(axis=1) < p1.max(axis=1)).all()


def test_apply_temperature_is_stable_for_huge_logits_and_log_probs():
    z = np.array([[1000.0, 999.0, -1000.0]])
    p = cal.apply_temperature(z, 1.0)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p[0, :2], [1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))])
    # log-probs with a zero-probability class (-inf) work and keep it at 0.
    with np.errstate(divide="ignore"):
        lp = np.log(np.array([[0.7, 0.3, 0.0]]))
    q = cal.apply_temperature(lp, 2.0)
    assert q[0, 2] == 0.0 and np.isclose(q.sum(), 1.0)


def test_logits_and_log_probs_give_the_same_calibrated_probs():
    z, _ = _calibrated_set(50, seed=1)
    log_probs = np.log(cal.apply_temperature(z, 1.0))
    for T in (0.5, 1.0, 2.5):
        np.testing.assert_allclose(cal.apply_temperature(z, T),
                                   cal.apply_temperature(log_probs, T), atol=1e-12)


@pytest.mark.parametrize("T", [0.0, -1.0, float("nan"), float("inf")])
def test_apply_temperature_rejects_bad_temperatures(T):
    with pytest.raises(ValueError):
        cal.apply_temperature(np.zeros((2, 3)), T)


# --------------------------------------------------------------------------------------
# fit_temperature
# --------------------------------------------------------------------------------------


def test_calibrated_model_gets_temperature_near_one():
    z, y = _calibrated_set(5000, seed=2)
    assert cal.fit_temperature(z, y) == pytest.approx(1.0, abs=0.07)


@pytest.mark.parametrize("seed", [3, 4])
def test_overconfident_logits_get_their_scale_back(seed):
    # Logits three times too large: the fitted temperature must undo the factor.
    z, y = _calibrated_set(5000, seed=seed)
    T = cal.fit_temperature(3.0 * z, y)
    assert T == pytest.approx(3.0, rel=0.07)
    # The same from log-probabilities (how an averaged ensemble is calibrated).
    log_probs = np.log(cal.apply_temperature(3.0 * z, 1.0))
    assert cal.fit_temperature(log_probs, y) == pytest.approx(T, rel=1e-4)


def test_underconfident_logits_get_a_temperature_below_one():
    z, y = _calibrated_set(5000, seed=5)
    assert cal.fit_temperature(z / 2.0, y) == pytest.approx(0.5, rel=0.07)


def test_fit_is_robust_on_a_few_hundred_examples():
    # 300 validation clips is a realistic size; the fit must land near the truth.
    Ts = [cal.fit_temperature(3.0 * _calibrated_set(300, seed=s)[0],
                              _calibrated_set(300, seed=s)[1]) for s in range(10, 15)]
    assert all(2.3 < T < 3.9 for T in Ts), Ts


def test_fitted_temperature_minimises_the_nll():
    z, y = _calibrated_set(400, seed=6)
    T = cal.fit_temperature(2.0 * z, y)
    best = cal.nll(2.0 * z, y, T)
    for other in (T * 0.9, T * 1.1, 1.0):
        assert cal.nll(2.0 * z, y, other) >= best - 1e-9


def test_fit_hits_the_bounds_on_degenerate_validation_sets():
    z = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]] * 10)
    right = np.tile([0, 1, 2], 10)
    wrong = np.tile([1, 2, 0], 10)
    assert cal.fit_temperature(z, right) == cal.T_MIN
    assert cal.fit_temperature(z, wrong) == cal.T_MAX


def test_fit_temperature_validates_its_input():
    with pytest.raises(ValueError):
        cal.fit_temperature(np.zeros((3, 4)), np.array([0, 1]))
    with pytest.raises(ValueError):
        cal.fit_temperature(np.zeros((2, 4)), np.array([0, 7]))
    with pytest.raises(ValueError):
        cal.fit_temperature(np.zeros(4), np.array([0]))
    with pytest.raises(ValueError):
        cal.fit_temperature(np.zeros((0, 4)), np.zeros(0, dtype=int))


# --------------------------------------------------------------------------------------
# ECE and reliability curve
# --------------------------------------------------------------------------------------


def test_ece_is_zero_when_accuracy_equals_confidence_in_every_bin():
    # 10 predictions at confidence 0.8 of which 8 are right, 4 at 0.5 of which 2 are right.
    p80 = np.tile([0.8, 0.1, 0.1], (10, 1))
    p50 = np.tile([0.5, 0.3, 0.2], (4, 1))
    probs = np.vstack([p80, p50])
    y = np.array([0] * 8 + [1] * 2 + [0, 0, 1, 2])
    assert cal.expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_known_answer_for_an_overconfident_model():
    # Confidence 0.9 but only half right: ECE = |0.5 - 0.9| = 0.4.
    probs = np.tile([0.9, 0.05, 0.05], (10, 1))
    y = np.array([0] * 5 + [1] * 5)
    assert cal.expected_calibration_error(probs, y) == pytest.approx(0.4)


def test_ece_of_a_large_calibrated_sample_is_near_zero():
    z, y = _calibrated_set(50_000, seed=7)
    assert cal.expected_calibration_error(cal.apply_temperature(z, 1.0), y) < 0.01


def test_temperature_scaling_reduces_ece_of_an_overconfident_model():
    z, y = _calibrated_set(2000, seed=8)
    before = cal.expected_calibration_error(cal.apply_temperature(3 * z, 1.0), y)
    T = cal.fit_temperature(3 * z, y)
    after = cal.expected_calibration_error(cal.apply_temperature(3 * z, T), y)
    assert before > 0.15
    assert after < 0.05


def test_reliability_curve_bins():
    z, y = _calibrated_set(777, seed=9)
    probs = cal.apply_temperature(z, 1.0)
    curve = cal.reliability_curve(probs, y, n_bins=10)
    assert set(curve) == {"lower", "upper", "count", "confidence", "accuracy"}
    assert all(len(v) == 10 for v in curve.values())
    assert sum(curve["count"]) == 777
    np.testing.assert_allclose(curve["lower"], np.arange(10) / 10, atol=1e-12)
    np.testing.assert_allclose(curve["upper"], np.arange(1, 11) / 10, atol=1e-12)
    for lo, hi, n, c, a in zip(*curve.values()):
        if n:
            assert lo <= c <= hi and 0.0 <= a <= 1.0
        else:
            assert np.isnan(c) and np.isnan(a)
    # With 6 classes the top probability is at least 1/6: the lowest bin is empty.
    assert curve["count"][0] == 0


def test_reliability_curve_puts_edge_values_in_the_lower_bin():
    # Bins (0, .25], (.25, .5], (.5, .75], (.75, 1]; these edges are exact in binary.
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]])
    curve = cal.reliability_curve(probs, np.array([0, 0, 1]), n_bins=4)
    assert curve["count"] == [0, 1, 1, 1]
    assert curve["accuracy"][1:] == [1.0, 0.0, 1.0]
    assert curve["confidence"][1:] == [0.5, 0.75, 1.0]


def test_reliability_curve_rejects_non_probabilities():
    with pytest.raises(ValueError):
        cal.reliability_curve(np.array([[2.0, -1.0]]), np.array([0]))


# --------------------------------------------------------------------------------------
# Uncertainty threshold
# --------------------------------------------------------------------------------------


def _from_confidences(conf: list[float], correct: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities with the given top confidences, class 0 always predicted."""
    conf_a = np.asarray(conf, dtype=float)
    probs = np.stack([conf_a, 1 - conf_a], axis=1)
    return probs, np.where(np.asarray(correct), 0, 1)


def test_threshold_rule_on_a_hand_made_example():
    # Sorted by confidence: right, right, right, wrong, right, wrong, wrong, right, wrong, wrong
    conf = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.52]
    correct = [1, 1, 1, 0, 1, 0, 0, 1, 0, 0]
    probs, y = _from_confidences(conf, [bool(c) for c in correct])
    # Precision of the top k: 1, 1, 1, .75, .8, .667, .571, .625, .556, .5
    choice = cal.choose_uncertainty_threshold(probs, y, target_precision=0.7, min_kept=1)
    assert choice.threshold == pytest.approx(0.75)  # top 5: 4/5 = 0.8 >= 0.7
    assert choice.precision_above == pytest.approx(0.8)
    assert choice.coverage == pytest.approx(0.5)
    assert choice.met_target
    strict = cal.choose_uncertainty_threshold(probs, y, target_precision=0.9, min_kept=1)
    assert strict.threshold == pytest.approx(0.85) and strict.coverage == pytest.approx(0.3)
    # min_kept keeps the choice from resting on very few predictions.
    guarded = cal.choose_uncertainty_threshold(probs, y, target_precision=0.9, min_kept=4)
    assert not guarded.met_target
    assert guarded.threshold == pytest.approx(0.75)  # best precision among k >= 4 (0.8)
    assert guarded.precision_above == pytest.approx(0.8)


def test_threshold_is_zero_when_the_model_already_meets_the_target():
    probs, y = _from_confidences([0.9, 0.8, 0.6, 0.55], [True, True, True, False])
    choice = cal.choose_uncertainty_threshold(probs, y, target_precision=0.7, min_kept=1)
    assert choice == cal.ThresholdChoice(0.0, 0.75, 1.0, True)


def test_threshold_keeps_ties_together():
    # Three predictions share confidence 0.8; a threshold cannot keep only some of them.
    probs, y = _from_confidences([0.9, 0.8, 0.8, 0.8, 0.6], [True, True, False, False, False])
    choice = cal.choose_uncertainty_threshold(probs, y, target_precision=0.5, min_kept=1)
    assert choice.threshold == pytest.approx(0.8)
    assert choice.coverage == pytest.approx(0.8)
    assert choice.precision_above == pytest.approx(0.5)


def test_precision_above_threshold_holds_on_the_validation_set():
    z, y = _calibrated_set(600, seed=11)
    probs = cal.apply_temperature(z, 1.0)
    choice = cal.choose_uncertainty_threshold(probs, y, target_precision=0.8)
    kept = probs.max(axis=1) >= choice.threshold
    assert choice.met_target
    assert kept.mean() == pytest.approx(choice.coverage)
    assert (probs.argmax(axis=1) == y)[kept].mean() == pytest.approx(choice.precision_above)
    assert choice.precision_above >= 0.8


# --------------------------------------------------------------------------------------
# Calibration record
# --------------------------------------------------------------------------------------


def test_calibration_round_trips_through_json():
    c = cal.Calibration(temperature=1.8, threshold=0.42, ece_before=0.12, ece_after=0.03,
                        n_val=321)
    d = json.loads(json.dumps(c.to_dict()))
    assert d == {"temperature": 1.8, "threshold": 0.42, "ece_before": 0.12,
                 "ece_after": 0.03, "n_val": 321, "method": "temperature"}
    assert cal.Calibration.from_dict(d) == c
    assert cal.Calibration.from_dict({**d, "added_in_a_later_version": 1}) == c
    with pytest.raises(ValueError, match="temperature"):
        cal.Calibration.from_dict({"threshold": 0.4})


def test_calibrate_end_to_end():
    z, y = _calibrated_set(1500, seed=12)
    c = cal.calibrate(3.0 * z, y, target_precision=0.7)
    assert c.temperature == pytest.approx(3.0, rel=0.1)
    assert c.ece_after < c.ece_before
    assert c.n_val == 1500 and c.method == "temperature"
    probs = c.probs(3.0 * z)
    np.testing.assert_allclose(probs, cal.apply_temperature(3.0 * z, c.temperature))
    uncertain = c.is_uncertain(probs)
    assert ((probs.argmax(axis=1) == y)[~uncertain].mean()) >= 0.7
    # to_dict holds plain Python types, so json can write it.
    assert all(type(v) in (float, int, str) for v in c.to_dict().values())


def test_calibrate_records_what_the_threshold_does_on_validation_data():
    z, y = _calibrated_set(1500, seed=13)
    c = cal.calibrate(2.0 * z, y, target_precision=0.7)
    probs = c.probs(2.0 * z)
    kept = ~c.is_uncertain(probs)
    assert c.target_precision == 0.7
    assert c.coverage == pytest.approx(kept.mean())
    assert c.precision_above == pytest.approx((probs.argmax(1) == y)[kept].mean())
    d = json.loads(json.dumps(c.to_dict()))
    assert {"target_precision", "coverage", "precision_above"} <= set(d)
    assert cal.Calibration.from_dict(d) == c
    # Records written before these facts existed still read, without them.
    old = {k: v for k, v in d.items() if k not in ("coverage", "precision_above",
                                                  "target_precision")}
    assert cal.Calibration.from_dict(old).coverage is None


# --------------------------------------------------------------------------------------
# Stored predictions
# --------------------------------------------------------------------------------------


def test_prediction_arrays_and_log_probs_from_a_predictions_table():
    import pandas as pd

    from ser import config

    rows = [dict(true="sad", **{f"p_{lab}": 0.0 for lab in config.LABELS}),
            dict(true="angry", **{f"p_{lab}": 0.16667 for lab in config.LABELS})]
    rows[0]["p_sad"] = 1.00001  # five-decimal rounding
    probs, y = cal.prediction_arrays(pd.DataFrame(rows))
    assert y.tolist() == [config.LABELS.index("sad"), 0]
    np.testing.assert_allclose(probs.sum(1), 1.0)
    lp = cal.log_probs(probs)
    assert np.isfinite(lp).all() and lp.min() == pytest.approx(np.log(cal.PROB_FLOOR))
    with pytest.raises(ValueError, match="lacks columns"):
        cal.prediction_arrays(pd.DataFrame(rows).drop(columns=["p_fear"]))
    with pytest.raises(ValueError, match="unknown labels"):
        cal.prediction_arrays(pd.DataFrame([{**rows[1], "true": "calm"}]))


def test_reliability_from_before_and_after():
    z, y = _calibrated_set(2000, seed=14)
    over = cal.apply_temperature(3.0 * z, 1.0)  # an over-confident model's outputs
    c = cal.calibrate(np.log(over), y)
    r = cal.reliability_from(over, y, c, name="m", part="test")
    assert list(r["curves"]) == ["before calibration", "after calibration"]
    assert r["ece"]["after"] < r["ece"]["before"] and r["n"] == 2000
    assert sum(r["curves"]["after calibration"]["count"]) == 2000
    none = cal.reliability_from(over, y, None)
    assert list(none["curves"]) == ["before calibration"] and none["ece"]["after"] is None
