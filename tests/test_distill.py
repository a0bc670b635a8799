"""Knowledge distillation (`ser.distill`): soft targets from real trained teachers on the
demo corpus, the leak check, and a student trained in a real subprocess."""

import json
import time

import numpy as np
import pytest
import torch

from ser import runs
from ser.bundle import save_bundle
from ser.dataset import featurise, predict_proba, prepare
from ser.distill import attach_teachers, distill_loss
from ser.recipe import TrainConfig
from ser.training import fit

COMMON = dict(epochs=1, max_clips=150, seed=3, batch_size=32)


@pytest.fixture(scope="module")
def teacher(demo_root, tmp_path_factory):
    """A log-mel teacher trained on the speaker split of the demo sample, saved as a bundle."""
    res = fit(TrainConfig(arch="lenet2d", noise=False, **COMMON))
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    save_bundle(path, res.model, res.card)
    return path, res


def test_soft_targets_are_the_teachers_probabilities_on_every_training_row(teacher):
    path, res = teacher
    cfg = TrainConfig(arch="lenet1d", noise=True, teachers=str(path), **COMMON)
    data = prepare(cfg, "fs1")
    attach_teachers(data, cfg)
    n_train = len(data.selection.split.train)
    assert data.soft.shape == (n_train * 2, 6)  # originals + one noise copy each
    np.testing.assert_allclose(data.soft.sum(1), 1, atol=1e-5)
    # The originals' targets are what the teacher predicts when it scores those clips
    # through the evaluation path (its own features and normalisation).
    clips = data.selection.part("train")
    expected = predict_proba(res.model, featurise(res.card, clips))
    np.testing.assert_allclose(data.soft[:n_train], expected, atol=1e-4)
    # The noise copies are scored as what they are, not as their originals.
    assert not np.allclose(data.soft[n_train:], expected, atol=1e-3)


def test_a_low_pass_student_learns_from_a_full_band_teacher_on_the_teachers_images(
        demo_root, tmp_path):
    # The teachers score each training row as their own features see it (here the full
    # band), the student trains on its own (bands above 8 kHz silenced, random floor).
    # The demo corpus is 16 kHz (nothing above 8 kHz), so the pool gets a TESS-named
    # corpus of 24.4-kHz clips with hiss up to its Nyquist frequency.
    import soundfile as sf

    rng = np.random.default_rng(0)
    for spk in ("OAF", "YAF"):
        for w_i, word in enumerate(("back", "dog", "keen")):
            for e_i, emo in enumerate(("angry", "disgust", "fear", "happy", "neutral", "sad")):
                t = np.arange(int(0.8 * 24414)) / 24414
                y = 0.3 * np.sin(2 * np.pi * (150 + 20 * e_i + 7 * w_i) * t)
                y += (0.02 + 0.01 * e_i) * rng.standard_normal(len(t))
                folder = tmp_path / "tess" / f"{spk}_{emo}"
                folder.mkdir(parents=True, exist_ok=True)
                sf.write(folder / f"{spk}_{word}_{emo}.wav", y.astype(np.float32), 24414)
    res = fit(TrainConfig(arch="lenet2d", noise=False, epochs=1, seed=3, data=str(demo_root)))
    path = tmp_path / "teacher.pt"
    save_bundle(path, res.model, res.card)
    cfg = TrainConfig(arch="lenet2d", noise=True, teachers=str(path), random_floor=30,
                      features={"fs2_norm": "lowpass"}, epochs=1, seed=3, batch_size=32,
                      data=f"{demo_root},tess={tmp_path / 'tess'}")
    cfg.check()
    data = prepare(cfg, "fs2")
    attach_teachers(data, cfg)
    clips = data.selection.part("train")
    n_train = len(clips)
    expected = predict_proba(res.model, featurise(res.card, clips))
    np.testing.assert_allclose(data.soft[:n_train], expected, atol=1e-4)
    from dataclasses import replace

    lowpassed = predict_proba(res.model, featurise(
        replace(res.card, features=replace(res.card.features, fs2_norm="lowpass")), clips))
    assert not np.allclose(data.soft[:n_train], lowpassed, atol=1e-3)  # the test can tell
    student = fit(cfg)
    assert student.card.features.fs2_norm == "lowpass"
    assert student.card.data["teachers"] == ["lenet2d"]
    # a teacher of other extraction settings (here 64 mel bands) is still refused
    other = TrainConfig(arch="lenet2d", noise=False, teachers=str(path),
                        features={"n_mels": 64}, **COMMON)
    with pytest.raises(ValueError, match="other features than this run"):
        attach_teachers(prepare(other, "fs2"), other)


def test_teacher_term_changes_training_and_is_recorded(teacher):
    path, _ = teacher
    plain = fit(TrainConfig(arch="lenet1d", noise=False, mixup=0.2, **COMMON))
    taught = fit(TrainConfig(arch="lenet1d", noise=False, mixup=0.2, teachers=str(path),
                             distill=0.8, distill_temperature=3, **COMMON))
    assert plain.history[0]["train_loss"] != taught.history[0]["train_loss"]
    assert taught.card.training.teachers == str(path)
    assert taught.card.training.distill == 0.8
    assert taught.card.data["teachers"] == ["lenet2d"]
    assert "teachers" not in plain.card.training.as_dict()  # older cards stay as they were


def test_a_teacher_that_saw_the_students_test_clips_is_refused(demo_root, tmp_path):
    res = fit(TrainConfig(arch="lenet1d", noise=False, split="random", **COMMON))
    path = tmp_path / "random-split.pt"
    save_bundle(path, res.model, res.card)
    cfg = TrainConfig(arch="lenet1d", noise=False, teachers=str(path), **COMMON)
    with pytest.raises(ValueError, match="validation or test part"):
        attach_teachers(prepare(cfg, "fs1"), cfg)


def test_bad_distillation_options_are_refused_before_training(demo_root):
    with pytest.raises(ValueError, match="distill .the teacher term's weight. must be"):
        TrainConfig(teachers="ensemble", distill=0).check()
    with pytest.raises(ValueError, match="distill_temperature must be"):
        TrainConfig(teachers="ensemble", distill_temperature=0.5).check()
    with pytest.raises(ValueError, match="speaker normalisation"):
        TrainConfig(arch="ser2d", teachers="ensemble", speaker_norm="speaker").check()
    cfg = TrainConfig(arch="lenet1d", teachers="no-such-model", **COMMON)
    with pytest.raises(ValueError, match="names no model"):
        attach_teachers(prepare(cfg, "fs1"), cfg)
    TrainConfig(distill=0).check()  # the weight is not read without teachers


def test_distill_loss_is_zero_when_the_student_agrees():
    soft = torch.softmax(torch.randn(8, 6), dim=1)
    logits = torch.log(soft) * 1.0
    assert float(distill_loss(logits, soft, 2.0)) == pytest.approx(0, abs=1e-5)
    assert float(distill_loss(torch.zeros(8, 6), soft, 2.0)) > 0


def test_student_trains_in_a_subprocess_run(teacher):
    path, _ = teacher
    run_id = runs.start(TrainConfig(arch="lenet1d", noise=False, teachers=str(path),
                                    **COMMON))
    t0 = time.time()
    while runs.status(run_id)["state"] not in ("finished", "failed"):
        assert time.time() - t0 < 240, runs.log_tail(run_id, 40)
        time.sleep(0.3)
    assert runs.status(run_id)["state"] == "finished", runs.log_tail(run_id, 40)
    card = json.loads((runs.run_dir(run_id) / "card.json").read_text())
    assert card["training"]["teachers"] == str(path)
    assert card["data"]["teachers"] == ["lenet2d"]
    from ser.zoo import run_models, table

    row = table([e for e in run_models() if e.run_id == run_id]).iloc[0]
    assert row["teachers"] == f"{path} (1 model)"  # the Results table says who taught it


def test_train_page_refuses_a_leaking_teacher_before_launch(demo_root, models_dir):
    from app_helpers import open_page

    res = fit(TrainConfig(arch="lenet1d", noise=False, split="random", epochs=1, seed=3,
                          name="random-split-teacher"))
    save_bundle(models_dir / "random-split-teacher" / "model.pt", res.model, res.card)
    queued = lambda: set(runs.root().iterdir()) if runs.root().exists() else set()  # noqa: E731
    before = queued()
    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["lenet1d"])
    at.multiselect(key="teachers").set_value(["random-split-teacher"])
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("validation or test part" in e and "Not launched" in e for e in errors), errors
    assert queued() == before, "a run was queued"


def test_a_single_corpus_teacher_that_saw_a_pooled_students_test_clips_is_refused(
        demo_root, tess_pool, tmp_path):
    # Regression: a pool names its clips "<corpus>/<clip>", a single corpus "<clip>", so a
    # teacher trained on the demo corpus alone with a random split was never caught leaking
    # into a pooled student's held-out demo speakers.
    res = fit(TrainConfig(arch="lenet2d", noise=False, split="random", epochs=1, seed=3,
                          data=str(demo_root)))
    path = tmp_path / "random-split.pt"
    save_bundle(path, res.model, res.card)
    cfg = TrainConfig(arch="lenet1d", noise=False, teachers=str(path), data=tess_pool,
                      epochs=1, seed=3)
    with pytest.raises(ValueError, match="validation or test part"):
        attach_teachers(prepare(cfg, "fs1"), cfg)


def test_distill_scope_heard_keeps_the_teachers_to_the_corpora_they_trained_on(
        demo_root, tess_pool, tmp_path):
    # A teacher that heard the demo corpus alone, on the speaker split a pool also uses there.
    res = fit(TrainConfig(arch="lenet2d", noise=False, epochs=1, seed=3, data=str(demo_root)))
    path = tmp_path / "demo-teacher.pt"
    save_bundle(path, res.model, res.card)
    common = dict(arch="lenet1d", noise=True, teachers=str(path), data=tess_pool, epochs=1,
                  seed=3)
    every = attach_teachers(prepare(TrainConfig(**common), "fs1"), TrainConfig(**common))
    cfg = TrainConfig(distill_scope="heard", **common)
    data = attach_teachers(prepare(cfg, "fs1"), cfg)
    corpora = np.tile(data.selection.part("train")["corpus"].to_numpy(), 2)  # + noise copy
    heard, unheard = corpora != "tess", corpora == "tess"
    assert heard.any() and unheard.any()
    # Where the teacher heard the corpus, its answers; elsewhere the labels stand in.
    np.testing.assert_allclose(data.soft[heard], every.soft[heard], atol=1e-6)
    labels = data.labels["train"].numpy()
    np.testing.assert_array_equal(data.soft[unheard], np.eye(6)[labels[unheard]])
    assert not np.allclose(every.soft[unheard], data.soft[unheard])
    assert fit(cfg).card.training.distill_scope == "heard"
    assert "distill_scope" not in TrainConfig(**common).as_dict()  # older cards unchanged
    with pytest.raises(ValueError, match="distill_scope must be"):
        TrainConfig(distill_scope="some", **common).check()


def test_train_page_launches_a_student_whose_teachers_answer_only_where_they_heard(
        demo_root, models_dir):
    from app_helpers import open_page

    res = fit(TrainConfig(arch="lenet1d", noise=False, epochs=1, seed=3, name="demo-teacher"))
    save_bundle(models_dir / "demo-teacher" / "model.pt", res.model, res.card)
    before = set(runs.root().iterdir()) if runs.root().exists() else set()
    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["lenet1d"])
    at.multiselect(key="teachers").set_value(["demo-teacher"]).run()
    at.checkbox(key="distill_heard").check()
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    new = set(runs.root().iterdir()) - before
    assert len(new) == 1, [e.value for e in at.error]
    cfg = json.loads((new.pop() / "config.json").read_text())
    assert cfg["teachers"] == "demo-teacher" and cfg["distill_scope"] == "heard"
