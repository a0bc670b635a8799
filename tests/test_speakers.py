"""Speaker normalisation (ser.speakers) through the data path, scoring and the Predict chain.

Known answers for the statistics (sounding frames only; a fixed gain per band disappears),
the enrolment draw (never scored, seeded per speaker), a real speaker-normalised training
run on the demo corpus (CLI subprocess) scored again from its card, and the Predict chain:
a speaker-normalised model needs a voice (enrolment or a long recording), otherwise it is
skipped with a message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from predict_helpers import SR, clip_and_takes, make_bundle, place, wav

from ser import config
from ser.inference import (
    SELF_MIN_SEGMENTS,
    SELF_MIN_SPEECH_S,
    Predictor,
    VoiceNeededError,
    analyse,
    open_clip,
)
from ser.recipe import TrainConfig
from ser.speakers import (
    VoiceProfile,
    draw_enrolment,
    normalise_by_group,
    reliability,
    split_enrolment,
    stats_by_group,
    voice_stats,
)


def images(n=4, bands=8, frames=20, seed=0):
    rng = np.random.default_rng(seed)
    x = (-30 + 10 * rng.standard_normal((n, bands, frames))).clip(-79, 0).astype(np.float32)
    x[:, :, 15:] = -80.0  # padding: silence at the floor
    return x


def test_voice_stats_use_sounding_frames_only():
    x = images()
    st = voice_stats(x)
    expected = x[:, :, :15].transpose(0, 2, 1).reshape(-1, 8).mean(0)
    np.testing.assert_allclose(st.mean, expected, rtol=1e-5)
    assert st.clips == 4 and st.frames == 4 * 15
    # a higher log-mel floor (top_db=30): padding at -30 dB is still not a sounding frame
    high = np.maximum(x, -30.0)
    st30 = voice_stats(high)
    assert st30.frames == 4 * 15
    np.testing.assert_allclose(
        st30.mean, high[:, :, :15].transpose(0, 2, 1).reshape(-1, 8).mean(0), rtol=1e-5)


def test_a_fixed_gain_per_band_disappears_after_own_normalisation():
    """A microphone or room is (nearly) a fixed offset per band in dB: two recordings of the
    same speech through different chains look the same after each is normalised by its
    own statistics."""
    x = images()
    x[:, :, 15:] = -20.0  # no padding here: every frame sounds
    tilt = np.linspace(-6, 6, 8, dtype=np.float32)[None, :, None]
    a = voice_stats(x).apply(x)
    b = voice_stats(x + tilt).apply(x + tilt)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_flat_bands_are_not_blown_up():
    x = np.full((2, 4, 10), -20.0, np.float32)
    st = voice_stats(x)
    assert (st.std >= 1.0).all()
    assert np.isfinite(st.apply(x)).all()


def test_normalise_by_group_needs_every_speaker():
    x = images(n=4)
    groups = np.array(["a", "a", "b", "b"])
    stats = stats_by_group(x, groups)
    out = normalise_by_group(x, groups, stats)
    np.testing.assert_allclose(out[:2], stats["a"].apply(x[:2]))
    with pytest.raises(ValueError, match="no voice statistics for speaker 'c'"):
        normalise_by_group(x, np.array(["a", "a", "b", "c"]), stats)


def test_enrolment_draw_is_seeded_per_speaker_and_leaves_clips_to_score():
    clips = pd.DataFrame({"speaker": ["a"] * 12 + ["b"] * 3 + ["c"]})
    picked = draw_enrolment(clips, 10, seed=0)
    per = clips["speaker"].iloc[picked].value_counts().to_dict()
    assert per == {"a": 10, "b": 2}  # b keeps one clip to score; c cannot be enrolled
    again = draw_enrolment(clips, 10, seed=0)
    np.testing.assert_array_equal(picked, again)
    # the draw for "a" does not depend on which other speakers are present
    alone = draw_enrolment(clips.iloc[:12], 10, seed=0)
    np.testing.assert_array_equal(picked[:10], alone)
    with pytest.raises(ValueError):
        draw_enrolment(clips, 0)
    enrol, scored = split_enrolment(clips, 10, seed=0)
    np.testing.assert_array_equal(enrol, picked)
    assert clips["speaker"].iloc[scored].value_counts().to_dict() == {"a": 2, "b": 1}


def test_reliability_levels():
    assert reliability(2.0, 1)[0] == "poor"
    assert reliability(10.0, 3)[0] == "fair"
    assert reliability(30.0, 10)[0] == "good"


def test_options_are_checked():
    with pytest.raises(ValueError, match="speaker_norm"):
        TrainConfig(speaker_norm="corpus").check()
    with pytest.raises(ValueError, match="enrol"):
        TrainConfig(speaker_norm="speaker", enrol=0).check()


def test_selection_keeps_enrolment_clips_out_of_scoring():
    from ser.dataset import select

    cfg = TrainConfig(arch="lenet2d", speaker_norm="speaker", enrol=3, max_clips=240)
    sel = select(cfg)
    for part in ("val", "test"):
        scored, enrol = sel.split.parts()[part], sel.enrol[part]
        assert len(enrol) and not set(scored) & set(enrol)
        spk = sel.manifest["speaker"]
        counts = spk.iloc[enrol].value_counts()
        assert (counts <= 3).all()
        assert set(spk.iloc[scored]) <= set(spk.iloc[enrol])
    assert "enrolment clips" in sel.split.description
    plain = select(TrainConfig(arch="lenet2d", max_clips=240))
    assert not plain.enrol
    assert len(plain.split.test) == len(sel.split.test) + len(sel.enrol["test"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, session_dir):
    """A speaker-normalised lenet2d trained on the demo corpus through the CLI."""
    root = tmp_path_factory.mktemp("spk")
    out = root / "model.pt"
    # Its own runs folder: the run must not show up in other tests' model lists.
    env = {**os.environ, "SER_RUNS_DIR": str(root / "runs")}
    subprocess.run([sys.executable, "-m", "ser", "train", "--arch", "lenet2d", "--epochs", "1",
                    "--max-clips", "200", "--speaker-norm", "speaker", "--enrol", "3",
                    "--width", "0.25", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=600, env=env)
    return out


@pytest.mark.slow
def test_a_speaker_normalised_run_is_scored_again_from_its_card(trained):
    from ser.bundle import load_bundle
    from ser.evaluation import evaluate_bundle

    b = load_bundle(trained)
    assert b.card.speaker_normalised and b.card.training.enrol == 3
    assert "3 enrolment clips per test speaker" in b.card.protocol_caption()
    assert b.card.data["enrolment"]["per_speaker"] == 3
    report, frame = evaluate_bundle(b)
    assert report["data"]["clips"] == b.card.split["counts"]["test"] == len(frame)
    assert abs(report["accuracy"] - b.card.metrics["test"]["accuracy"]) < 1e-6
    assert "enrolment clips" in report["protocol"]["description"]


def test_scoring_needs_enrolment_clips(trained):
    from ser.bundle import load_bundle
    from ser.dataset import featurise, select

    b = load_bundle(trained)
    clips = select(b.card.training).part("test")
    with pytest.raises(ValueError, match="enrolment clips"):
        featurise(b.card, clips)


# ------------------------------------------------------------------------ Predict chain

@pytest.fixture(scope="module")
def spk_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("voice")
    return {"spk": make_bundle(root / "spk" / "model.pt", name="spk", speaker_norm=True),
            "plain": make_bundle(root / "plain" / "model.pt", name="plain", seed=3)}


def test_predictor_refuses_without_a_voice_and_scores_with_one(spk_bundle, speech):
    p = Predictor(spk_bundle["spk"])
    assert p.needs_voice
    with pytest.raises(VoiceNeededError, match="speaker-normalised"):
        p.predict_samples(speech[0], SR)
    voice = VoiceProfile()
    for y in speech[1:4]:
        voice.add(y, SR)
    assert voice.seconds > 1
    pred = p.predict_samples(speech[0], SR, voice=voice)
    assert pred.probs.shape == (config.N_CLASSES,)
    assert np.isclose(pred.probs.sum(), 1.0, atol=1e-5)


def test_voice_statistics_change_the_prediction(spk_bundle, speech):
    """The profile is really used: a profile with every band 10 dB louder shifts the input."""
    p = Predictor(spk_bundle["spk"])
    a, b = VoiceProfile(), VoiceProfile()
    for y in speech[1:4]:
        a.add(y, SR)
        b.add(y * 0.2 + 0.05 * np.sin(np.arange(len(y)) * 0.3).astype(np.float32), SR)
    pa = p.predict_samples(speech[0], SR, voice=a).probs
    pb = p.predict_samples(speech[0], SR, voice=b).probs
    assert not np.allclose(pa, pb)


def test_analyse_skips_speaker_normalised_models_without_a_voice(spk_bundle, speech):
    y, _ = place([0.5, speech[0], 0.5])
    clip = open_clip(wav(y), "short.wav")
    res = analyse(clip, [Predictor(spk_bundle["spk"]), Predictor(spk_bundle["plain"])])
    assert res.skipped == ["spk"] and [m.name for m in res.models] == ["plain"]
    assert res.ok and res.voice_source == ""
    only = analyse(clip, [Predictor(spk_bundle["spk"])])
    assert not only.ok and "calibrate to the voice" in only.message
    assert json.loads(json.dumps(only.as_dict()))["skipped"] == ["spk"]


def test_analyse_with_enrolment_and_with_a_long_recording(spk_bundle, speech):
    voice = VoiceProfile()
    for y in speech[:3]:
        voice.add(y, SR)
    y, _ = place([0.5, speech[3], 0.5])
    enrolled = analyse(open_clip(wav(y), "one.wav"), [Predictor(spk_bundle["spk"])],
                       voice=voice)
    assert enrolled.ok and enrolled.voice_source == "enrolment"
    parts = [0.8]
    for i in range(14):  # about 17 s of speech in 14 utterances
        parts += [speech[i % len(speech)], 0.8]
    long_y, _ = place(parts)
    res = analyse(open_clip(wav(long_y), "long.wav"), [Predictor(spk_bundle["spk"])])
    assert len(res.segments) >= SELF_MIN_SEGMENTS and res.speech_s >= SELF_MIN_SPEECH_S
    assert res.ok and res.voice_source == "the recording itself"


@pytest.mark.slow
def test_cli_predict_with_and_without_a_voice(tmp_path, spk_bundle, speech):
    clip, takes = clip_and_takes(tmp_path, speech)
    cmd = [sys.executable, "-m", "ser", "predict", str(spk_bundle["spk"]), str(clip)]
    bare = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert bare.returncode == 2 and "--voice" in bare.stderr
    assert "Traceback" not in bare.stderr
    ok = subprocess.run(cmd + takes + ["--json"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "3 take(s)" in ok.stderr
    probs = json.loads(ok.stdout)[str(clip)]["spk"]["probs"]
    assert abs(sum(probs.values()) - 1) < 1e-4
    seg = subprocess.run(cmd + takes + ["--segments", "--json"], capture_output=True,
                         text=True, timeout=300)
    assert seg.returncode == 0, seg.stderr
    assert json.loads(seg.stdout)[str(clip)]["voice"] == "enrolment"


def test_cross_corpus_cells_say_when_speakers_were_enrolled(tmp_path):
    from ser import crosscorpus, plots

    cell = crosscorpus.Cell("tess", "unseen", 100, 0.5, 0.5, {"angry": 0.5},
                            {lab: 1 / 6 for lab in config.LABELS}, enrol=10)
    crosscorpus.write(tmp_path, [cell])
    back = crosscorpus.read(tmp_path)
    assert back[0].enrol == 10
    fig = plots.crosscorpus_matrix({"m": back})
    assert "10 enrolment clips/speaker" in fig.data[0].text[0][0]


def test_label_shares_as_on_a_balanced_corpus():
    """On an unbalanced corpus the share of a frequent class is not a collapse: the
    balanced share weighs each true emotion equally (SAVEE: neutral is twice any other)."""
    import numpy as np

    from ser import crosscorpus

    # 4 neutral clips, 2 angry: all neutral right, one angry called neutral
    y = np.array([4, 4, 4, 4, 0, 0])
    pred = np.array([4, 4, 4, 4, 0, 4])
    cell = crosscorpus.cell("savee", "unseen", y, pred)
    assert cell.predicted_share["neutral"] == 5 / 6
    assert cell.balanced_share["neutral"] == (1 + 0.5) / 2
    assert cell.balanced_share["angry"] == (0 + 0.5) / 2
    assert abs(sum(cell.balanced_share.values()) - 1) < 1e-9
    even = crosscorpus.cell("x", "unseen", np.array([0, 4]), np.array([4, 4]))
    assert even.balanced_share == even.predicted_share


def test_unseen_summary_names_the_corpora_of_a_pooled_model(tmp_path):
    """A model that heard every corpus has no unseen cell: the Predict caption says so and
    names its corpora instead of saying nothing (regression: it said nothing)."""
    import shutil

    from ser import crosscorpus

    repo = Path(__file__).resolve().parents[1] / "models"
    pooled, plain = tmp_path / "pooled", tmp_path / "plain"
    pooled.mkdir(), plain.mkdir()
    shutil.copy(repo / "ser2d.pool5-rfloor30-kd-x3" / "card.json", pooled / "card.json")
    crosscorpus.write(plain, [crosscorpus.Cell("tess", "unseen", 100, 0.4, 0.38, {},
                                               {lab: 1 / 6 for lab in config.LABELS})])
    text = crosscorpus.unseen_summary({"pool": pooled})
    assert "pool heard CREMA-D, EMOVO, SAVEE, TESS, URDU in training" in text
    assert "no corpus was left to measure it" in text
    both = crosscorpus.unseen_summary({"plain": plain, "pool": pooled})
    assert both.startswith("Measured on speech corpora") and "plain: 38 % UAR on TESS" in both
    assert crosscorpus.unseen_summary({"gone": tmp_path / "missing"}) == ""


def test_a_single_short_take_is_not_enough(spk_bundle, speech):
    """With one short take the statistics are too noisy (the models collapse onto one
    label): the model refuses, and the Predict chain leaves it out."""
    voice = VoiceProfile()
    voice.add(speech[0], SR)
    p = Predictor(spk_bundle["spk"])
    with pytest.raises(VoiceNeededError, match="too short"):
        p.predict_samples(speech[1], SR, voice=voice)
    y, _ = place([0.5, speech[1], 0.5])
    res = analyse(open_clip(wav(y), "one.wav"), [p, Predictor(spk_bundle["plain"])],
                  voice=voice)
    assert res.skipped == ["spk"] and res.voice_source == ""


# ------------------------------------------------------------ adapting plain models

def test_voice_offset_moves_the_voice_average_onto_the_reference():
    from ser.speakers import mean_log_probs, shift_log_probs, voice_offset

    rng = np.random.default_rng(0)
    takes = rng.dirichlet(np.ones(6), size=8)
    takes[:, 0] += 2.0  # this voice sounds "angry" to the model on every take
    takes /= takes.sum(1, keepdims=True)
    reference = np.log(np.full(6, 1 / 6))
    off = voice_offset(takes, reference)
    assert abs(off.sum()) < 1e-9 and off[0] == off.min()
    moved = shift_log_probs(np.log(takes), off)
    assert np.allclose(np.exp(moved).sum(1), 1.0)
    # after the shift the takes' mean log-probability is the reference (up to a constant)
    gap = mean_log_probs(np.exp(moved)) - reference
    assert np.allclose(gap, gap.mean(), atol=1e-9)
    assert (np.exp(moved).argmax(1) == 0).mean() < (takes.argmax(1) == 0).mean()
    assert np.allclose(voice_offset(takes), voice_offset(takes, np.zeros(6)))
    with pytest.raises(ValueError, match="classes"):
        voice_offset(takes, np.zeros(4))
    with pytest.raises(ValueError, match="at least one take"):
        voice_offset(np.zeros((0, 6)))


def _takes(speech, idx):
    voice = VoiceProfile()
    for i in idx:
        voice.add(speech[i], SR)
    return voice


def test_a_plain_model_is_adapted_to_a_voice(spk_bundle, speech):
    from ser.speakers import voice_offset

    p = Predictor(spk_bundle["plain"])
    assert p.adapts_to_voice and not p.needs_voice
    voice = _takes(speech, (1, 2, 3))
    plain = p.predict_samples(speech[0], SR).probs
    adapted = p.predict_samples(speech[0], SR, voice=voice).probs
    assert np.isclose(adapted.sum(), 1.0, atol=1e-6) and not np.allclose(plain, adapted)
    # the offset is the takes' answers moved onto the (here uniform) reference
    takes = np.concatenate([p.predict_samples(y, voice.sample_rate).window_probs
                            for y in voice.clips])
    assert np.allclose(p.voice_offset(voice), voice_offset(takes), atol=1e-5)
    # a speaker-normalised model is normalised at its input, never shifted
    assert not Predictor(spk_bundle["spk"]).adapts_to_voice
    with pytest.raises(VoiceNeededError, match="too short"):
        p.predict_samples(speech[0], SR, voice=_takes(speech, (1,)))


def test_the_reference_comes_from_stored_validation_predictions(tmp_path):
    from ser.speakers import mean_log_probs

    path = make_bundle(tmp_path / "m" / "model.pt", name="m")
    assert Predictor(path).voice_reference is None  # no table: uniform
    probs = np.array([[0.7, 0.1, 0.05, 0.05, 0.05, 0.05], [0.2, 0.2, 0.2, 0.2, 0.1, 0.1]])
    table = pd.DataFrame({"clip": ["a", "b"], "true": ["angry", "sad"],
                          **{f"p_{lab}": probs[:, i] for i, lab in enumerate(config.LABELS)}})
    table.to_csv(path.parent / "val_predictions.csv", index=False)
    assert np.allclose(Predictor(path).voice_reference, mean_log_probs(probs))
    (path.parent / "val_predictions.csv").write_text("clip,true\nx,nonsense\n")
    assert Predictor(path).voice_reference is None  # damaged: uniform, no exception


def test_analyse_adapts_plain_models_to_an_enrolment_only(spk_bundle, speech):
    voice = _takes(speech, (0, 1, 2))
    y, _ = place([0.5, speech[3], 0.5])
    clip = open_clip(wav(y), "one.wav")
    models = [Predictor(spk_bundle["spk"]), Predictor(spk_bundle["plain"])]
    on = analyse(clip, models, voice=voice)
    off = analyse(clip, models, voice=voice, adapt=False)
    assert on.adapted == ["plain"] and off.adapted == [] and on.voice_source == "enrolment"
    assert json.loads(json.dumps(on.as_dict()))["adapted"] == ["plain"]
    assert not np.allclose(on.models[1].raw, off.models[1].raw)
    assert np.allclose(on.models[0].raw, off.models[0].raw)  # spk: same in both
    # A long recording's own statistics serve the speaker-normalised model only: one long
    # take in a single mood must not cancel its own mood in the plain model.
    parts = [0.8]
    for i in range(14):
        parts += [speech[i % len(speech)], 0.8]
    long_clip = open_clip(wav(place(parts)[0]), "long.wav")
    res = analyse(long_clip, models)
    assert res.voice_source == "the recording itself" and res.adapted == []
    alone = analyse(long_clip, [models[1]])
    assert np.allclose(alone.models[0].raw, res.models[1].raw)


@pytest.mark.slow
def test_cli_adapts_a_plain_model_to_a_voice_and_refuses_a_short_one(tmp_path, spk_bundle,
                                                                       speech):
    clip, takes = clip_and_takes(tmp_path, speech)
    cmd = [sys.executable, "-m", "ser", "predict", str(spk_bundle["plain"]), str(clip), "--json"]

    def probs(extra):
        r = subprocess.run(cmd + extra, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return np.array(list(json.loads(r.stdout)[str(clip)]["plain"]["probs"].values()))

    bare, adapted, off = probs([]), probs(takes), probs(takes + ["--no-adapt"])
    assert np.allclose(bare, off) and not np.allclose(bare, adapted)
    short = subprocess.run(cmd + takes[:2], capture_output=True, text=True, timeout=300)
    assert short.returncode == 2 and "at least 3 takes or 8 s" in short.stderr
    assert "Traceback" not in short.stderr


def test_the_inside_view_answers_as_the_adapted_verdict(spk_bundle, speech):
    from ser.insight import Inspector

    p = Predictor(spk_bundle["plain"])
    voice = _takes(speech, (1, 2, 3))
    ins = Inspector(p)
    bare = ins.view(speech[0], SR).probs
    adapted = ins.view(speech[0], SR, voice=voice).probs
    assert np.allclose(bare, p.predict_samples(speech[0], SR).window_probs[0], atol=1e-5)
    assert np.allclose(adapted, p.predict_samples(speech[0], SR, voice=voice).window_probs[0],
                       atol=1e-5)
    assert not np.allclose(bare, adapted)


def test_a_batchnorm_model_is_adapted_by_its_statistics_then_the_offset(tmp_path, speech):
    """A model with BatchNorm (ser2d) scores a voice with BatchNorm statistics moved towards
    the voice's takes (`VOICE_BN_WEIGHT`), then the offset from that network's answers; the
    trained network and its weights stay as they were, and the inside view agrees."""
    import torch

    from ser.inference import VOICE_BN_WEIGHT
    from ser.insight import Inspector
    from ser.speakers import shift_log_probs, voice_offset

    p = Predictor(make_bundle(tmp_path / "bn" / "model.pt", arch="ser2d", name="bn", seed=5))
    assert p.has_batchnorm and 0 < VOICE_BN_WEIGHT <= 1
    voice = _takes(speech, (1, 2, 3))
    trained = {k: v.clone() for k, v in p.model.state_dict().items()}
    net = p.net(voice)
    assert net is not p.model and p.net(voice) is net  # cached in the profile
    assert p.net(None) is p.model and p.net(_takes(speech, (1,))) is p.model  # too short
    moved = [k for k in trained if k.endswith("running_mean")
             and not torch.allclose(net.state_dict()[k], trained[k])]
    assert moved, "no BatchNorm statistics moved towards the voice"
    for k, v in p.model.state_dict().items():
        torch.testing.assert_close(v, trained[k])
        if k.endswith("weight") or k.endswith("bias"):
            torch.testing.assert_close(net.state_dict()[k], v)
    # the offset comes from the adapted network's answers on the takes (features once)
    assert p.take_features(voice) is p.take_features(voice)
    lp_takes = p._log_probs(p.take_features(voice), net=net)
    assert np.allclose(p.voice_offset(voice), voice_offset(np.exp(lp_takes)), atol=1e-5)
    # the verdict: the adapted network's answer, shifted by that offset
    got = p.predict_samples(speech[0], SR, voice=voice).window_probs
    stacked, _ = p.window_features(speech[0], SR)
    want = np.exp(shift_log_probs(p._log_probs(stacked, net=net), p.voice_offset(voice)))
    assert np.allclose(got, want, atol=1e-5)
    assert not np.allclose(got, p.predict_samples(speech[0], SR).window_probs)
    view = Inspector(p).view(speech[0], SR, voice=voice).probs
    assert np.allclose(view, got[0], atol=1e-5)
    # a model without BatchNorm is adapted by the offset alone
    plain = Predictor(make_bundle(tmp_path / "lenet" / "model.pt", name="lenet", seed=5))
    assert not plain.has_batchnorm and plain.net(voice) is plain.model


def test_one_corpus_key_twice_is_refused_not_silently_dropped(tmp_path):
    """`--corpus savee=A --corpus savee=B` scored only B and printed it as if it were A (a
    clean corpus and its re-recorded copy were compared this way). Now the CLI and the
    benchmarks refuse it and name both folders."""
    from ser import crosscorpus

    assert crosscorpus.parse_corpora(["tess=/a", " savee = /b "]) == {"tess": "/a",
                                                                       "savee": "/b"}
    for bad, needle in ((["savee=/a", "savee=/b"], "given twice (/a and /b)"),
                        (["savee"], "KEY=FOLDER"), (["=/a"], "KEY=FOLDER")):
        with pytest.raises(ValueError, match=re.escape(needle)):
            crosscorpus.parse_corpora(bad)
    root = Path(__file__).resolve().parents[1]
    for cmd in ([sys.executable, "-m", "ser", "crosscorpus", "ser2d.pool5-rfloor30-kd-x3"],
                [sys.executable, str(root / "benchmarks" / "enrolment.py"),
                 "ser2d.pool5-rfloor30-kd-x3"],
                [sys.executable, str(root / "benchmarks" / "default_model.py")]):
        out = subprocess.run(cmd + ["--corpus", f"savee={tmp_path}/a",
                                    "--corpus", f"savee={tmp_path}/b"],
                             capture_output=True, text=True, timeout=120, cwd=root)
        assert out.returncode != 0
        assert "--corpus savee is given twice" in out.stderr, (cmd, out.stderr)
        assert "Traceback" not in out.stderr
