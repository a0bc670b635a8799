"""The Predict chain (ser.inference.analyse) on real audio: speech segments from Silero VAD,
per-model temperatures, the ensemble's calibration, "uncertain", the timeline table; the
stored calibrations (bundle re-save, ensemble.json) and the CLI (predict --segments,
calibrate).

Models are untrained but real bundles (what they predict does not matter here: the
chain's bookkeeping does); speech is the synthetic voice of ser.corpora.demo.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from predict_helpers import SR, floor, make_bundle, place, utterances, wav

from ser import config
from ser.calibration import Calibration, apply_temperature, log_probs
from ser.ensemble import Ensemble
from ser.inference import ClipAnalysis, Predictor, ScoredModel, analyse, open_clip
from ser.segments import Segment

TOL_S = 0.3  # segment boundary tolerance (see tests/test_segments.py)


def cal(T: float = 1.0, threshold: float = 0.3) -> Calibration:
    return Calibration(temperature=T, threshold=threshold, ece_before=0.1, ece_after=0.05,
                       n_val=100)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[np.ndarray]:
    return utterances(tmp_path_factory.mktemp("speech") / "corpus")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {
        "a": make_bundle(root / "a" / "model.pt", name="a", seed=1,
                         calibration=cal(2.0, 0.35).to_dict()),
        "b": make_bundle(root / "b" / "model.pt", name="b", seed=2,
                         calibration=cal(0.7, 0.45).to_dict()),
        "plain": make_bundle(root / "plain" / "model.pt", name="plain", seed=3),
        "fs1": make_bundle(root / "fs1" / "model.pt", arch="lenet1d", name="fs1", seed=4),
    }


@pytest.fixture(scope="module")
def two_utterances(speech):
    y, truth = place([1.0, speech[0], 1.5, speech[1], 1.0])
    return open_clip(wav(y), "two.wav"), truth


# ------------------------------------------------------------------------ segments

def test_two_utterances_give_two_segments_and_a_verdict_from_speech_only(two_utterances,
                                                                          bundles):
    clip, truth = two_utterances
    a = analyse(clip, [Predictor(bundles["a"]), Predictor(bundles["plain"])])
    assert a.ok and a.speech and a.segmented
    assert len(a.segments) == 2, a.segments
    for seg, (start, end) in zip(a.segments, truth):
        assert abs(seg.start_s - start) <= TOL_S and abs(seg.end_s - end) <= TOL_S
    # Speech only: the 3.5 s of pauses are not scored.
    speech_s = sum(b - a_ for a_, b in truth)
    assert a.speech_s == pytest.approx(speech_s, abs=2 * TOL_S)
    assert a.speech_s < clip.duration_s - 2.5
    # The verdict is the duration-weighted mean of the segments.
    d = np.array([s.duration_s for s in a.segments])
    np.testing.assert_allclose(a.clip_probs, (d[:, None] * a.probs).sum(0) / d.sum())
    assert a.label == config.LABELS[int(np.argmax(a.clip_probs))]
    assert a.clip_probs.sum() == pytest.approx(1.0)
    # The same chain without VAD scores the pauses too.
    whole = analyse(clip, [Predictor(bundles["a"])], segments=False)
    assert not whole.segmented and whole.speech_s == pytest.approx(clip.duration_s)
    assert whole.segments[0].start_s == 0.0 and whole.segments[-1].end_s == clip.duration_s


def test_the_timeline_table_has_one_row_per_segment(two_utterances, bundles):
    clip, _ = two_utterances
    a = analyse(clip, [Predictor(bundles["a"]), Predictor(bundles["b"])])
    t = a.table()
    assert list(t["segment"]) == [1, 2]
    assert {"start_s", "end_s", "emotion", "confidence", "uncertain", "runner_up",
            "agreement"} <= set(t.columns)
    assert np.allclose(t[[f"p_{lab}" for lab in config.LABELS]].sum(axis=1), 1, atol=1e-3)
    assert (t["confidence"] >= t["runner_up_confidence"]).all()
    back = pd.read_csv(pd.io.common.StringIO(t.to_csv(index=False)))
    assert len(back) == 2 and list(back.columns) == list(t.columns)
    d = a.as_dict()
    json.dumps(d)  # JSON-ready
    assert d["speech"] and len(d["segments"]) == 2 and d["verdict"] in (*config.LABELS,
                                                                         "uncertain")


@pytest.mark.parametrize("kind", ["silence", "noise", "tone"])
def test_no_speech_is_a_message_not_a_prediction(kind, bundles):
    from conftest import tone

    y = {"silence": np.zeros(3 * SR, np.float32),
         "noise": floor(4.0) * 300,  # white noise at about -10 dBFS
         "tone": tone(4.0, SR, freq=190)}[kind]
    a = analyse(open_clip(wav(y), f"{kind}.wav"), [Predictor(bundles["a"])])
    assert not a.ok and not a.speech and a.segments == []
    assert "No speech found" in a.message
    assert a.verdict is None and a.clip_probs is None and not a.uncertain
    assert a.table().empty
    assert a.as_dict()["verdict"] is None and "No speech found" in a.as_dict()["message"]


def test_short_segments_are_padded_and_scored(bundles):
    y = floor(3.0) * 100
    for key in ("a", "fs1"):
        p = Predictor(bundles[key])
        segs = [Segment(0.0, 0.3), Segment(1.0, 1.05), Segment(2.0, 2.0), Segment(0.0, 3.0)]
        raw, calibrated = p.segment_probs(y, SR, segs)
        assert raw.shape == calibrated.shape == (4, config.N_CLASSES)
        np.testing.assert_allclose(raw.sum(1), 1, atol=1e-6)
        np.testing.assert_allclose(calibrated.sum(1), 1, atol=1e-6)
        assert p.predict_samples(y[:1000], SR).probs.shape == (config.N_CLASSES,)


def test_long_segments_are_scored_in_windows(bundles):
    p = Predictor(bundles["plain"])
    y = floor(12.0) * 100
    raw, _ = p.segment_probs(y, SR, [Segment(0.0, 12.0)])
    whole = p.predict_samples(y, SR)  # the same half-overlapping windows, averaged
    np.testing.assert_allclose(raw[0], whole.probs, atol=1e-5)


def test_long_recording_with_progress(speech, bundles):
    parts: list = [0.5]
    for i in range(32):  # over a minute: utterances with pauses of 0.6-2 s
        parts += [speech[i % len(speech)], 0.6 + (i % 4) * 0.45]
    y, truth = place(parts)
    clip = open_clip(wav(y), "long.wav")
    seen = []
    a = analyse(clip, [Predictor(bundles["a"]), Predictor(bundles["b"])],
                progress=lambda f, text: seen.append((f, text)))
    assert clip.duration_s > 60
    assert abs(len(a.segments) - len(truth)) <= 2, (len(a.segments), len(truth))
    assert all(s.duration_s <= 5.02 for s in a.segments)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) > 3
    assert any("Scoring" in text for _, text in seen)


# ------------------------------------------------------------------------ calibration

def test_temperature_is_applied_per_model_and_probabilities_sum_to_one(two_utterances,
                                                                        bundles):
    clip, _ = two_utterances
    a = analyse(clip, [Predictor(bundles["a"]), Predictor(bundles["plain"])])
    sa, plain = a.models
    assert sa.calibrated and sa.temperature == 2.0
    assert not plain.calibrated and plain.temperature == 1.0
    np.testing.assert_allclose(sa.probs, apply_temperature(np.log(sa.raw), 2.0),
                               atol=1e-6)
    np.testing.assert_array_equal(plain.probs, plain.raw)
    for p in (sa.probs, sa.raw, a.probs):
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (sa.probs.argmax(1) == sa.raw.argmax(1)).all()
    assert (sa.probs.max(1) < sa.raw.max(1)).all()  # T > 1 softens
    np.testing.assert_allclose(a.probs, (sa.probs + plain.probs) / 2)
    assert a.uncalibrated_models == ["plain"] and not a.calibrated
    assert "mean of the models' own thresholds" in a.calibration_note
    assert a.threshold == pytest.approx(0.35)  # only "a" has one


def test_ensemble_temperature_only_for_exactly_its_members(two_utterances, bundles):
    clip, _ = two_utterances
    ens = Ensemble(name="ens", members=["a", "b"], selection="test",
                   calibration=cal(3.0, 0.25).to_dict())
    pa, pb, plain = (Predictor(bundles[k]) for k in ("a", "b", "plain"))
    a = analyse(clip, [pa, pb], ensemble=ens)
    assert a.ensemble_calibration is not None and a.threshold == 0.25
    mean = (a.models[0].probs + a.models[1].probs) / 2
    np.testing.assert_allclose(a.probs, apply_temperature(log_probs(mean), 3.0), atol=1e-9)
    assert "ensemble" in a.calibration_note
    for chosen in ([pa], [pa, pb, plain]):
        other = analyse(clip, chosen, ensemble=ens)
        assert other.ensemble_calibration is None
        np.testing.assert_allclose(other.probs, np.mean([m.probs for m in other.models], 0))
    single = analyse(clip, [pb], ensemble=ens)
    assert single.threshold == 0.45 and "T = 0.70" in single.calibration_note
    uncal = analyse(clip, [plain])
    assert uncal.threshold is None and not uncal.uncertain and "uncalibrated" in \
        uncal.calibration_note


def _analysis(probs: list[list[float]], threshold: float | None,
              model_probs: list[list[list[float]]] | None = None) -> ClipAnalysis:
    p = np.asarray(probs, dtype=np.float64)
    segs = [Segment(float(i), float(i) + 1.0) for i in range(len(p))]
    models = [ScoredModel(f"m{i}", None, None, np.asarray(mp), np.asarray(mp))
              for i, mp in enumerate(model_probs or [probs])]
    return ClipAnalysis("x.wav", float(len(p)), segs, True, models, p, threshold, "")


def test_uncertain_below_the_threshold_with_the_two_leading_emotions():
    a = _analysis([[0.40, 0.30, 0.10, 0.10, 0.05, 0.05]], threshold=0.5)
    assert a.uncertain and a.verdict == "uncertain" and a.label == "angry"
    assert a.top2 == [("angry", pytest.approx(0.4)), ("disgust", pytest.approx(0.3))]
    assert bool(a.table()["uncertain"][0])
    sure = _analysis([[0.60, 0.20, 0.10, 0.05, 0.03, 0.02]], threshold=0.5)
    assert not sure.uncertain and sure.verdict == "angry"
    assert not _analysis([[0.40, 0.30, 0.10, 0.10, 0.05, 0.05]], threshold=None).uncertain
    # One confident segment and one unsure one: each flagged on its own.
    two = _analysis([[0.9, 0.02, 0.02, 0.02, 0.02, 0.02], [0.3, 0.25, 0.2, 0.1, 0.1, 0.05]],
                    threshold=0.5)
    assert list(two.table()["uncertain"]) == [False, True]


def test_agreement_and_votes():
    happy = [[0.1, 0.1, 0.1, 0.5, 0.1, 0.1]]
    sad = [[0.1, 0.1, 0.1, 0.1, 0.1, 0.5]]
    a = _analysis(happy, 0.2, model_probs=[happy, happy, sad])
    assert a.votes == {"happy": 2, "sad": 1} and a.disagree
    assert a.agreement == pytest.approx(2 / 3)
    assert not _analysis(happy, 0.2, model_probs=[happy, happy]).disagree


def test_a_model_that_cannot_load_is_reported_and_the_others_run(two_utterances, bundles):
    from ser.bundle import BundleError

    clip, _ = two_utterances

    def broken():
        raise BundleError("damaged file")

    a = analyse(clip, [("broken", broken), ("a", lambda: Predictor(bundles["a"]))])
    assert a.errors == [("broken", "damaged file")] and [m.name for m in a.models] == ["a"]
    none = analyse(clip, [("broken", broken)])
    assert not none.ok and "could be loaded" in none.message


def test_calibration_stored_in_a_resaved_bundle_round_trips(tmp_path):
    import torch

    from ser.bundle import load_bundle, read
    from ser.zoo import write_calibration

    for half in (True, False):
        path = make_bundle(tmp_path / f"h{half}" / "model.pt", half=half)
        before_card, before_state = read(path)
        c = Calibration(temperature=1.37, threshold=0.42, ece_before=0.08, ece_after=0.02,
                        n_val=738, target_precision=0.7, coverage=0.81, precision_above=0.71)
        write_calibration(path, c)
        card, state = read(path)
        assert card["weights_sha256"] == before_card["weights_sha256"]
        assert card["weights_dtype"] == before_card["weights_dtype"]
        for k in before_state:
            assert torch.equal(state[k], before_state[k])
        assert Calibration.from_dict(card["calibration"]) == c
        side = json.loads((path.parent / "card.json").read_text())
        assert Calibration.from_dict(side["calibration"]) == c
        assert load_bundle(path).card.calibration == c.to_dict()
        p = Predictor(path)
        assert p.calibration == c and p.temperature == 1.37
        write_calibration(path, None)
        assert "calibration" not in read(path)[0]


def test_a_damaged_calibration_record_is_a_bundle_error(tmp_path):
    from ser.bundle import BundleError

    path = make_bundle(tmp_path / "m" / "model.pt", calibration={"temperature": 2.0})
    with pytest.raises(BundleError, match="calibration"):
        Predictor(path)


# ------------------------------------------------------------------------ stored predictions

def _fake_predictions(n: int, seed: int, sharp: float) -> pd.DataFrame:
    """Per-clip probabilities of an over-confident model (logits scaled by ``sharp``)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, n)
    z = rng.normal(0, 1, (n, 6))
    z[np.arange(n), y] += 1.5
    p = apply_temperature(sharp * z, 1.0)
    df = pd.DataFrame({"clip": [f"c{i}" for i in range(n)],
                       "true": [config.LABELS[i] for i in y]})
    for j, lab in enumerate(config.LABELS):
        df[f"p_{lab}"] = np.round(p[:, j], 5)
    return df


@pytest.fixture()
def zoo(tmp_path, monkeypatch):
    """A models folder with two calibratable models and an ensemble of both."""
    from ser.ensemble import write_ensemble

    root = tmp_path / "models"
    for i, name in enumerate(("m1", "m2")):
        make_bundle(root / name / "model.pt", name=name, seed=i)
        _fake_predictions(600, seed=10 + i, sharp=3.0).to_csv(
            root / name / "val_predictions.csv", index=False)
        _fake_predictions(600, seed=20 + i, sharp=3.0).to_csv(
            root / name / "predictions.csv", index=False)
    # The members were scored on the same clips with the same labels.
    truth = pd.read_csv(root / "m1" / "val_predictions.csv")["true"]
    for part in ("val_predictions.csv", "predictions.csv"):
        ref = pd.read_csv(root / "m1" / part)["true"]
        df = pd.read_csv(root / "m2" / part)
        df["true"] = ref
        df.to_csv(root / "m2" / part, index=False)
    assert len(truth) == 600
    write_ensemble(Ensemble(name="ens", members=["m1", "m2"], selection="test"), root)
    monkeypatch.setenv("SER_MODELS_DIR", str(root))
    return root


def test_calibrating_stored_predictions_and_the_reliability_data(zoo):
    from ser import plots
    from ser.calibration import reliability_for
    from ser.ensemble import calibrate_ensemble, ensemble_reliability, read_ensemble
    from ser.zoo import calibrate_entry, shipped_models, write_calibration

    entries = shipped_models(zoo)
    fitted = {e.name: calibrate_entry(e) for e in entries}
    for c in fitted.values():
        assert c.temperature > 1.5 and c.ece_after < c.ece_before and c.n_val == 600
        assert c.coverage is not None and 0 < c.coverage <= 1
    uncalibrated = reliability_for(entries[0])
    assert uncalibrated["part"] == "test" and list(uncalibrated["curves"]) == [
        "before calibration"] and uncalibrated["ece"]["after"] is None
    for e in entries:
        write_calibration(e.bundle, fitted[e.name])
    entries = shipped_models(zoo)
    r = reliability_for(entries[0])
    assert r["n"] == 600 and r["calibration"]["temperature"] == pytest.approx(
        fitted["m1"].temperature)
    assert r["ece"]["after"] < r["ece"]["before"]  # on the test clips it was not fitted on
    fig = plots.reliability_diagram(r["curves"])
    assert [t.name.split(" (")[0] for t in fig.data] == ["perfectly calibrated",
                                                          "before calibration",
                                                          "after calibration"]
    ens = read_ensemble(zoo)
    ec = calibrate_ensemble(ens, entries)
    assert ec.n_val == 600 and ec.ece_after < ec.ece_before
    ens.calibration = ec.to_dict()
    er = ensemble_reliability(ens, entries)
    assert set(er["curves"]) == {"before calibration", "after calibration"}


def run_cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "ser", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_cli_calibrate_writes_cards_and_the_ensemble(zoo):
    from ser.bundle import read

    digests = {n: read(zoo / n / "model.pt")[0]["weights_sha256"] for n in ("m1", "m2")}
    dry = run_cli("calibrate")
    assert dry.returncode == 0, dry.stderr
    assert "m1" in dry.stdout and "ens (mean of members)" in dry.stdout
    assert "nothing written" in dry.stdout
    assert "calibration" not in json.loads((zoo / "m1" / "card.json").read_text())
    out = run_cli("calibrate", "--write")
    assert out.returncode == 0, out.stderr
    for n in ("m1", "m2"):
        card, _ = read(zoo / n / "model.pt")
        assert card["weights_sha256"] == digests[n]
        assert card["calibration"]["temperature"] > 1.5
        assert json.loads((zoo / n / "card.json").read_text())["calibration"] == \
            card["calibration"]
    ens = json.loads((zoo / "ensemble.json").read_text())
    assert ens["calibration"]["n_val"] == 600
    assert "written: m1, m2, models/ensemble.json" in out.stdout
    # Regression: a second --write rewrote every model.pt and card.json although nothing had
    # changed (the re-saved card gained the newer layout's fields). Now nothing is touched.
    files = [zoo / n / f for n in ("m1", "m2") for f in ("model.pt", "card.json")]
    files.append(zoo / "ensemble.json")
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    again = run_cli("calibrate", "--write")
    assert again.returncode == 0, again.stderr
    assert "written: nothing (every stored calibration is already up to date)" in again.stdout
    assert {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files} == before


def test_writing_the_stored_calibration_again_leaves_the_files_alone(tmp_path):
    from ser.zoo import same_calibration, write_calibration

    c = Calibration(temperature=1.37, threshold=0.42, ece_before=0.08, ece_after=0.02,
                    n_val=738, target_precision=0.7, coverage=0.81, precision_above=0.71)
    path = make_bundle(tmp_path / "m" / "model.pt")
    assert write_calibration(path, None) is False  # not calibrated, nothing to remove
    assert write_calibration(path, c) is True
    files = [path, path.parent / "card.json"]
    before = [(f.read_bytes(), f.stat().st_mtime_ns) for f in files]
    assert write_calibration(path, c) is False
    assert write_calibration(path, c.to_dict()) is False
    assert [(f.read_bytes(), f.stat().st_mtime_ns) for f in files] == before
    moved = Calibration.from_dict({**c.to_dict(), "temperature": 1.38})
    assert write_calibration(path, moved) is True
    assert same_calibration(None, None) and not same_calibration(c.to_dict(), None)
    assert not same_calibration({"method": "a", "n_val": 3}, {"method": "b", "n_val": 3})
    assert same_calibration({"temperature": 1.0}, {"temperature": 1.0 + 1e-13})


@pytest.mark.slow
def test_cli_predict_segments(tmp_path, two_utterances, bundles):
    clip, _ = two_utterances
    speech_wav = tmp_path / "two.wav"
    speech_wav.write_bytes(wav(clip.y, clip.sr))
    silent = tmp_path / "silent.wav"
    silent.write_bytes(wav(np.zeros(2 * SR, np.float32)))
    out = run_cli("predict", str(bundles["a"]), str(speech_wav), "--segments", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)[str(speech_wav)]
    assert res["speech"] and len(res["segments"]) == 2
    assert sum(res["probs"].values()) == pytest.approx(1.0)
    assert res["temperatures"] == {"a": 2.0}
    out = run_cli("predict", str(bundles["a"]), str(silent), "--segments", "--json")
    assert out.returncode == 1
    assert "No speech found" in out.stderr and "Traceback" not in out.stderr
    res = json.loads(out.stdout)[str(silent)]
    assert res["speech"] is False and res["verdict"] is None
    assert "No speech found" in res["message"]
    text = run_cli("predict", str(bundles["a"]), str(speech_wav), "--segments")
    assert text.returncode == 0 and "2 speech segments" in text.stdout
