"""Training engine: real subprocess runs on the demo corpus, bundles, reproducibility."""

import dataclasses
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import crema_with_votes, write_clip

from ser import runs
from ser.bundle import BundleError, load_bundle, save_bundle
from ser.inference import Predictor
from ser.recipe import TrainConfig
from ser.training import fit

FAST = dict(arch="lenet1d", epochs=2, noise=False, batch_size=32)


def wait_for(run_id, states, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = runs.status(run_id)
        if st["state"] in states:
            return st
        time.sleep(0.3)
    raise AssertionError(f"run stuck in {runs.status(run_id)}\n{runs.log_tail(run_id, 40)}")


@pytest.fixture(scope="module")
def finished_run(demo_root):
    run_id = runs.start(TrainConfig(**FAST))
    st = wait_for(run_id, ("finished", "failed"))
    assert st["state"] == "finished", runs.log_tail(run_id, 40)
    return run_id


def test_subprocess_run_finishes_with_everything(finished_run):
    d = runs.run_dir(finished_run)
    for name in ("config.json", "status.json", "metrics.jsonl", "train.log", "model.pt",
                 "card.json", "report.json", "predictions.csv"):
        assert (d / name).exists(), name
    m = runs.metrics(finished_run)
    epochs = [e for e in m if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for key in ("train_loss", "val_loss", "val_accuracy", "val_uar", "lr", "elapsed_s", "eta_s"):
        assert np.isfinite(epochs[-1][key])
    assert any(e["type"] == "step" for e in m)
    rep = json.loads((d / "report.json").read_text())
    for key in ("accuracy", "uar", "macro_f1", "macro_precision", "loss", "confusion_matrix",
                "per_class", "slices"):
        assert key in rep
    assert rep["protocol"]["protocol"] == "speaker" and rep["data"]["synthetic"] is True
    assert sum(map(sum, rep["confusion_matrix"])) == rep["n"]
    import pandas as pd

    preds = pd.read_csv(d / "predictions.csv")
    assert len(preds) == rep["n"]
    assert {"path", "speaker", "true", "predicted", "p_angry", "p_sad"} <= set(preds.columns)
    listed = [r["run_id"] for r in runs.list_runs()]
    assert finished_run in listed


@pytest.mark.slow
def test_bundle_alone_predicts_same_in_new_process(finished_run, tmp_path):
    path = runs.run_dir(finished_run) / "model.pt"
    clip = write_clip(tmp_path / "c.wav", 7.5, 16000, freq=200)  # > window: several windows
    pred = Predictor(path).predict(clip)
    assert pred.probs.shape == (6,) and abs(pred.probs.sum() - 1) < 1e-5
    assert len(pred.window_probs) >= 2
    out = subprocess.run([sys.executable, "-m", "ser", "predict", str(path), str(clip),
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    other = json.loads(out.stdout)[str(clip)]
    probs = list(other.values())[0]["probs"]
    np.testing.assert_allclose([probs[k] for k in sorted(probs)],
                               [dict(zip(("angry", "disgust", "fear", "happy", "neutral",
                                          "sad"), pred.probs))[k] for k in sorted(probs)],
                               atol=1e-6)


@pytest.mark.slow
def test_cli_evaluate_matches_report(finished_run):
    path = runs.run_dir(finished_run) / "model.pt"
    out = subprocess.run([sys.executable, "-m", "ser", "evaluate", str(path), "--json"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    saved = json.loads((runs.run_dir(finished_run) / "report.json").read_text())
    assert rep["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-9)
    assert rep["n"] == saved["n"]


@pytest.mark.slow
def test_cancel_running_run_keeps_a_loadable_bundle(demo_root):
    run_id = runs.start(TrainConfig(arch="lenet1d", epochs=500, noise=False, batch_size=16,
                                    log_every=1, patience=0))
    t0 = time.time()
    while not any(e["type"] == "epoch" for e in runs.metrics(run_id)):
        assert time.time() - t0 < 240, runs.log_tail(run_id, 30)
        assert runs.status(run_id)["state"] in runs.ACTIVE, runs.log_tail(run_id, 30)
        time.sleep(0.3)
    runs.cancel(run_id)
    st = wait_for(run_id, ("cancelled", "finished", "failed"), timeout=120)
    assert st["state"] == "cancelled", runs.log_tail(run_id, 30)
    b = load_bundle(runs.run_dir(run_id) / "model.pt")
    assert b.card.run["stopped"] == "cancelled"
    runs.delete(run_id)
    assert run_id not in [r["run_id"] for r in runs.list_runs()]


def test_run_that_raises_ends_failed_with_traceback(tmp_path):
    run_id = runs.start(TrainConfig(arch="lenet1d", data=str(tmp_path / "no-such-corpus")))
    st = wait_for(run_id, ("failed", "finished"))
    assert st["state"] == "failed"
    assert "does not exist" in st["error"]
    assert "Traceback" in (runs.run_dir(run_id) / "train.log").read_text()


def test_unknown_architecture_is_refused_before_launch():
    with pytest.raises(ValueError, match="unknown model"):
        runs.create(TrainConfig(arch="resnet9000"))


@pytest.mark.slow
def test_seeded_cpu_runs_repeat_exactly(demo_root):
    cfg = TrainConfig(arch="lenet2d", epochs=2, max_clips=150, noise=True, spec_augment=True,
                      mixup=0.2, seed=3, batch_size=32)
    a, b = fit(cfg), fit(cfg)
    assert [e["train_loss"] for e in a.history] == [e["train_loss"] for e in b.history]
    np.testing.assert_array_equal(a.predictions.filter(like="p_").to_numpy(),
                                  b.predictions.filter(like="p_").to_numpy())


@pytest.mark.slow
def test_several_augmented_copies_multiply_the_training_rows(demo_root):
    from ser.dataset import prepare

    base = dict(arch="lenet1d", max_clips=120, noise=True, seed=2)
    one = prepare(TrainConfig(**base), "fs1")
    three = prepare(TrainConfig(**base, copies=3), "fs1")
    n = len(one.selection.split.train)
    assert len(one.labels["train"]) == 2 * n and one.n_augmented == n
    assert len(three.labels["train"]) == 4 * n and three.n_augmented == 3 * n
    np.testing.assert_array_equal(three.labels["train"], one.labels["train"][:n].repeat(4))
    x = three.inputs["train"][0]
    # Each copy is drawn anew; the first augmented copy is the one a single-copy run uses.
    assert not torch.allclose(x[n:2 * n], x[2 * n:3 * n])
    assert len(three.labels["test"]) == len(one.labels["test"])
    with pytest.raises(ValueError, match="copies"):
        prepare(TrainConfig(**base, copies=0), "fs1")
    assert TrainConfig(**base, copies=3).describe_augmentation() == "white noise ×0.01 (×3)"


def test_shift_augment_moves_bands_and_frames():
    from ser.augment import shift_augment

    x = torch.randn(64, 1, 128, 216)
    gen = torch.Generator().manual_seed(0)
    y = shift_augment(x, freq=4, time=0.25, generator=gen)
    assert y.shape == x.shape and y is not x
    for i in range(len(x)):
        # Each example is one (band shift, time rotation) of its input, within the limits.
        found = [(k, r) for k in range(-4, 5) for r in range(-54, 55)
                 if torch.equal(y[i, 0, 10:118], torch.roll(x[i, 0, 10 - k:118 - k], r, 1))]
        assert found, i
    # Vacated bands repeat the edge band; nothing else is invented.
    z = shift_augment(x[:1], freq=4, generator=torch.Generator().manual_seed(3))
    assert set(z.unique().tolist()) <= set(x[0].unique().tolist())
    assert torch.equal(shift_augment(x, freq=0, time=0.0), x)


def test_random_floor_clips_each_image_at_its_own_floor():
    from ser.augment import random_floor

    gen = torch.Generator().manual_seed(0)
    db = -80 * torch.rand(32, 1, 128, 216, generator=gen)  # dB re each clip's peak
    mean, std = torch.linspace(-60, -30, 128), torch.linspace(5, 15, 128)
    z = (db - mean[None, None, :, None]) / std[None, None, :, None]
    out = random_floor(z, mean, std, low_db=30, high_db=80,
                       generator=torch.Generator().manual_seed(1))
    back = out * std[None, None, :, None] + mean[None, None, :, None]
    floors = []
    for i in range(len(db)):
        f = float(back[i].min())
        floors.append(f)
        assert -80 - 1e-3 <= f <= -30 + 1e-3
        above = db[i] > f + 1e-3
        torch.testing.assert_close(back[i][above], db[i][above], atol=1e-3, rtol=0)
        assert torch.allclose(back[i][~above], torch.tensor(f), atol=1e-3)
    assert np.std(floors) > 5  # one floor per example, not one per batch


def test_random_denoise_subtracts_each_chosen_images_noise_floor():
    from ser.augment import random_denoise
    from ser.features import floor_subtract

    gen = torch.Generator().manual_seed(0)
    db = -60 * torch.rand(16, 1, 128, 216, generator=gen)  # dB re each clip's peak
    db[:, :, :, 201:] = -80  # padding: 201 real frames, so the 20th percentile is a frame
    db[:, :, 0, 0] = 0.0
    mean, std = torch.linspace(-60, -30, 128), torch.linspace(5, 15, 128)
    m, s = mean[None, None, :, None], std[None, None, :, None]
    z = (db - m) / s
    # Strength 1 (no over-subtraction) on every image: the corpus-wide denoising's result.
    out = random_denoise(z, mean, std, p=1.0, top_db=80, max_oversubtract=1.0,
                         generator=torch.Generator().manual_seed(1))
    want = floor_subtract(db[:, 0].numpy(), top_db=80, oversubtract=1.0)
    np.testing.assert_allclose((out * s + m)[:, 0].numpy(), want, atol=1e-2)
    # Half the images on average, each at its own strength; the rest untouched.
    out = random_denoise(z, mean, std, p=0.5, top_db=80,
                         generator=torch.Generator().manual_seed(2))
    same = [bool(torch.equal(out[i], z[i])) for i in range(len(z))]
    assert 0 < sum(same) < len(z)
    back = out * s + m
    for i in range(len(z)):
        if not same[i]:  # a lower floor: more of the image sits at the bottom
            assert float((back[i] <= -79.9).float().mean()) > float((db[i] <= -79.9).float().mean())
    silent = torch.full((2, 1, 128, 216), -80.0)  # nothing to subtract: unchanged
    zs = (silent - m) / s
    torch.testing.assert_close(random_denoise(zs, mean, std, p=1.0, top_db=80), zs)


def test_freq_mixstyle_gives_each_image_a_mix_of_two_band_colours():
    from ser.augment import freq_mixstyle

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 1, 128, 216, generator=gen)
    # Every image its own band colour: a level and a spread per band.
    x = x * (torch.rand(12, 1, 128, 1, generator=gen) * 3 + 0.5) + torch.randn(12, 1, 128, 1,
                                                                      generator=gen) * 4
    out = freq_mixstyle(x, np.random.default_rng(3), p=1.0)
    again = freq_mixstyle(x, np.random.default_rng(3), p=1.0)
    assert torch.equal(out, again)  # the NumPy generator alone decides: seeded runs repeat
    rng = np.random.default_rng(3)
    rng.random()  # the batch's coin
    lam = torch.as_tensor(rng.beta(0.3, 0.3, size=12), dtype=torch.float32).view(12, 1, 1, 1)
    perm = torch.as_tensor(rng.permutation(12))
    mu, sig = x.mean(3, keepdim=True), (x.var(3, keepdim=True) + 1e-5).sqrt()
    torch.testing.assert_close(out.mean(3, keepdim=True), lam * mu + (1 - lam) * mu[perm],
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.std(3, keepdim=True), lam * sig + (1 - lam) * sig[perm],
                               atol=1e-3, rtol=1e-3)
    # The course in time inside each band is the image's own.
    z = (out - out.mean(3, keepdim=True)) / out.std(3, keepdim=True)
    torch.testing.assert_close(z, (x - mu) / x.std(3, keepdim=True), atol=1e-3, rtol=1e-3)
    assert freq_mixstyle(x, np.random.default_rng(0), p=0.0) is x
    assert torch.equal(freq_mixstyle(x[:1], np.random.default_rng(0), p=1.0), x[:1])
    half = freq_mixstyle(x.bfloat16(), np.random.default_rng(3), p=1.0)
    assert half.dtype == torch.bfloat16  # under bf16 autocast the batch keeps its type
    # About half the batches mixed at p = 0.5.
    rng = np.random.default_rng(7)
    mixed = sum(not torch.equal(freq_mixstyle(x, rng, p=0.5), x) for _ in range(200))
    assert 70 < mixed < 130


def test_mixstyle_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="mixstyle is the share"):
        TrainConfig(arch="ser2d", mixstyle=1.5).check()
    with pytest.raises(ValueError, match="MixStyle mixes the band statistics"):
        TrainConfig(arch="lenet1d", mixstyle=0.5).input_space()
    TrainConfig(arch="ser2d", mixstyle=0.5).check()
    assert TrainConfig(arch="ser2d", mixstyle=0.5).as_dict()["mixstyle"] == 0.5


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {"freq_shift": 3, "time_shift": 0.2},
    {"random_floor": 30},
    {"random_floor": 30, "random_denoise": 0.5},
    {"precision": "bf16"},
    {"random_floor": 30, "mixstyle": 0.5},
], ids=["shift", "random-floor", "random-denoise", "bf16", "mixstyle"])
def test_seeded_runs_with_batch_augmentation_repeat_exactly(demo_root, options):
    cfg = TrainConfig(arch="ser2d", epochs=1, max_clips=120, noise=False, seed=5,
                      batch_size=32, **options)
    a, b = fit(cfg), fit(cfg)
    assert [e["train_loss"] for e in a.history] == [e["train_loss"] for e in b.history]
    for key, value in options.items():
        assert getattr(a.card.training, key) == value
    # Predictions use the card's full feature floor: floor and denoising are training only.
    assert a.card.features.top_db == 80
    assert "random_denoise" not in TrainConfig(arch="ser2d").as_dict()  # absent when off
    assert "mixstyle" not in TrainConfig(arch="ser2d").as_dict()


def test_random_floor_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="random_floor must be"):
        TrainConfig(random_floor=5).check()
    with pytest.raises(ValueError, match="random_floor must be"):
        TrainConfig(random_floor=30, features={"top_db": 30}).check()
    with pytest.raises(ValueError, match="speaker normalisation"):
        TrainConfig(arch="ser2d", random_floor=30, speaker_norm="speaker").check()
    TrainConfig(arch="ser2d", random_floor=30).check()
    with pytest.raises(ValueError, match="random_denoise is the share"):
        TrainConfig(arch="ser2d", random_denoise=1.5).check()
    with pytest.raises(ValueError, match="random_denoise works on"):
        TrainConfig(arch="ser2d", random_denoise=0.5, speaker_norm="speaker").check()
    with pytest.raises(ValueError, match="Random denoising works on log-mel"):
        TrainConfig(arch="lenet1d", random_denoise=0.5).input_space()
    with pytest.raises(ValueError, match="FS1"):
        TrainConfig(arch="lenet1d", random_floor=30).check()
    with pytest.raises(ValueError, match="FS1"):
        fit(TrainConfig(arch="lenet1d", random_floor=30, epochs=1, max_clips=60))
    TrainConfig(arch="combined", random_floor=30).check()  # reads FS1 and FS2


def test_options_the_architecture_cannot_take_are_refused_before_any_run():
    """`TrainConfig.check()` knows each architecture's input: every caller (CLI, Train page,
    studies, the run queue) refuses the same way, before a run is queued."""
    with pytest.raises(ValueError, match="log-mel .2D. and voice models only; lenet1d reads FS1"):
        TrainConfig(arch="lenet1d", speaker_norm="speaker").check()
    with pytest.raises(ValueError, match=r"combined reads FS1\+FS2"):
        TrainConfig(arch="combined", speaker_norm="speaker").check()
    with pytest.raises(ValueError, match="unknown model 'nosuchnet'"):
        TrainConfig(arch="nosuchnet").check()
    assert TrainConfig(arch="ser2d", speaker_norm="speaker").check().input_space() == "fs2"


def test_bad_bundles_raise_bundle_error(finished_run, tmp_path):
    good = (runs.run_dir(finished_run) / "model.pt").read_bytes()
    cases = {
        "empty.pt": b"",
        "garbage.pt": b"definitely not a model" * 100,
        "truncated.pt": good[: len(good) // 2],
        "wav.pt": write_clip(tmp_path / "x.wav").read_bytes(),
    }
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    cases["other.pt"] = other.read_bytes()
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(BundleError):
            load_bundle(p)
    # tampered: same card, one weight changed
    obj = torch.load(runs.run_dir(finished_run) / "model.pt", weights_only=True)
    key = next(k for k, v in obj["state_dict"].items() if v.is_floating_point())
    obj["state_dict"][key] = obj["state_dict"][key] + 1
    torch.save(obj, tmp_path / "tampered.pt")
    with pytest.raises(BundleError, match="modified or damaged"):
        load_bundle(tmp_path / "tampered.pt")
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "missing.pt")


def test_half_precision_bundle_predicts_like_full(finished_run, tmp_path):
    b = load_bundle(runs.run_dir(finished_run) / "model.pt")
    save_bundle(tmp_path / "half.pt", b.model, b.card, half=True)
    h = load_bundle(tmp_path / "half.pt")
    assert h.card.extra["weights_dtype"] == "float16"
    clip = write_clip(tmp_path / "c.wav", 2.0)
    p1, p2 = Predictor(b).predict(clip), Predictor(h).predict(clip)
    np.testing.assert_allclose(p1.probs, p2.probs, atol=2e-2)


def test_bundle_roundtrip_for_every_architecture(tmp_path):
    """Regression: 0-d buffers (BatchNorm's num_batches_tracked) broke the weights digest."""
    from ser.card import Card
    from ser.models import create_model, list_models, model_input_space

    for arch in list_models():
        model = create_model(arch)
        card = Card(name=arch, arch=arch, input_space=model_input_space(arch),
                    normalisation={"fs1": {"mean": [0.0] * 169, "std": [1.0] * 169},
                                   "fs2": {"mean": [0.0] * 128, "std": [1.0] * 128},
                                   "voice": {"mean": [0.0] * 1792, "std": [1.0] * 1792}})
        save_bundle(tmp_path / f"{arch}.pt", model, card)
        loaded = load_bundle(tmp_path / f"{arch}.pt")
        for k, v in model.state_dict().items():
            assert torch.equal(v, loaded.model.state_dict()[k]), (arch, k)


@pytest.mark.slow
def test_ship_runs_and_build_an_ensemble(finished_run, tmp_path, monkeypatch):
    """Shipping writes bundle + card + report + curves + predictions (no local paths), checks
    the float16 file, and the ensemble is scored on the members' shared test clips."""
    import pandas as pd

    from ser.ensemble import build_ensemble
    from ser.zoo import FILES, list_pretrained, load_pretrained, ship_run, shipped_models, table

    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path))
    other = runs.start(TrainConfig(arch="lenet1d", epochs=1, noise=False, seed=5))
    assert wait_for(other, ("finished", "failed"))["state"] == "finished"
    for i, rid in enumerate((finished_run, other)):
        ship_run(rid, f"m{i}.demo-si")
    folder = tmp_path / "m0.demo-si"
    for name in FILES:  # one layout for shipped models and runs
        assert (folder / name).exists(), name
    assert list_pretrained("m0.*") == ["m0.demo-si"]
    assert load_pretrained("m1.demo-si").card.name == "m1.demo-si"
    with pytest.raises(BundleError, match="No shipped model"):
        load_pretrained("nope")
    # Validation predictions are the split's validation clips, disjoint from the test clips.
    val = pd.read_csv(folder / "val_predictions.csv")
    test = pd.read_csv(folder / "predictions.csv")
    assert len(val) and not set(val["clip"]) & set(test["clip"])
    assert "path" not in test.columns and "clip" in test.columns
    rep = json.loads((folder / "report.json").read_text())
    assert abs(rep["float16_check"]["accuracy_float16"] - rep["accuracy"]) < 0.05
    entries = shipped_models(tmp_path)
    assert len(table(entries)) == 2
    # The README's table comes from the CLI and carries each report's own figures.
    out = subprocess.run([sys.executable, "-m", "ser", "results", "--shipped", "--markdown"],
                         capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("| `m0.demo-si`"))
    assert f"| {rep['accuracy']:.1%} | {rep['uar']:.1%} | {rep['macro_f1']:.3f} |" in row
    demo = entries[0].card.corpus  # members come from one corpus (the demo one here)
    ens = build_ensemble(entries, top=2, corpus=demo)
    assert ens.test.n == rep["n"]
    assert sorted(ens.members) == ["m0.demo-si", "m1.demo-si"]
    assert "validation UAR" in ens.selection and 0 <= ens.val_uar <= 1
    # Without validation predictions, selection falls back to the top models by val UAR.
    for p in tmp_path.glob("*/val_predictions.csv"):
        p.unlink()
    assert "top 2" in build_ensemble(shipped_models(tmp_path), top=2, corpus=demo).selection
    with pytest.raises(ValueError, match="at least two"):
        build_ensemble(entries, top=2)  # no CREMA-D models here


def test_best_prefix_picks_the_group_size_on_the_data_given():
    from ser.ensemble import best_prefix

    y = np.array([0, 1, 2, 0, 1, 2])
    eye, wrong = np.eye(3)[y], np.eye(3)[(y + 1) % 3]
    first = np.arange(6)[:, None] < 3
    sure, unsure = 0.9 * eye + 0.1 * wrong, 0.4 * eye + 0.6 * wrong
    half = np.where(first, sure, unsure)  # right on the first 3 clips only
    other_half = np.where(first, unsure, sure)  # right on the last 3 only
    k, path = best_prefix(y, np.stack([half, other_half, wrong, wrong]))
    assert k == 2 and path[1] == 1.0 and len(path) == 4  # the two halves complete each other
    assert best_prefix(y, np.stack([eye, half, wrong]))[0] == 1  # ties go to fewer members
    assert best_prefix(y, np.stack([half, other_half, wrong]), max_size=1) == (1, [0.5])


@pytest.mark.slow
def test_cli_does_not_ship_a_cancelled_run(demo_root, tmp_path):
    """Regression: `train --ship` published the weights of a run cancelled mid-way."""
    import os
    import signal

    env = dict(os.environ, SER_MODELS_DIR=str(tmp_path))
    before = {r["run_id"] for r in runs.list_runs()}
    proc = subprocess.Popen([sys.executable, "-m", "ser", "train", "--arch", "lenet1d",
                             "--epochs", "300", "--patience", "0", "--no-noise",
                             "--ship", "x.demo"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while True:
        new = [r for r in runs.list_runs() if r["run_id"] not in before]
        if new and new[0]["status"]["state"] == "running" and runs.metrics(new[0]["run_id"]):
            break
        assert time.time() - t0 < 180 and proc.poll() is None, proc.communicate()
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "did not finish" in err
    assert runs.status(new[0]["run_id"])["state"] == "cancelled"
    assert not list(tmp_path.iterdir())


def test_refresh_batchnorm_measures_the_plain_average_over_the_inputs():
    from ser.training import refresh_batchnorm

    x = torch.randn(300, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0]) + 5
    net = torch.nn.Sequential(torch.nn.BatchNorm1d(4))
    net[0].running_mean.fill_(123.0)
    refresh_batchnorm(net, (x,), torch.device("cpu"), batch_size=100)
    torch.testing.assert_close(net[0].running_mean, x.mean(0), atol=1e-4, rtol=1e-4)
    # the variance is the average of the batches' own (unbiased) variances, as in training
    torch.testing.assert_close(net[0].running_var, x.view(3, 100, 4).var(1).mean(0),
                               atol=1e-4, rtol=1e-4)
    assert net[0].momentum == 0.1 and not net.training


def test_adapt_batchnorm_blends_the_measured_statistics_into_a_copy():
    from ser.training import adapt_batchnorm

    x = torch.randn(200, 4) * 3 + 7
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    net[1].running_mean.fill_(1.0)
    net[1].running_var.fill_(2.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    measured = net[0](x).detach()
    half = adapt_batchnorm(net, (x,), 0.5)
    torch.testing.assert_close(half[1].running_mean, 0.5 + 0.5 * measured.mean(0),
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(half[1].running_var, 1.0 + 0.5 * measured.var(0),
                               atol=1e-3, rtol=1e-3)
    assert not half.training
    # the original is untouched; weight 0 keeps the trained statistics
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])
    kept = adapt_batchnorm(net, (x,), 0.0)
    torch.testing.assert_close(kept[1].running_mean, before["1.running_mean"])
    torch.testing.assert_close(half[0].weight, net[0].weight)
    with pytest.raises(ValueError, match="0–1"):
        adapt_batchnorm(net, (x,), 1.5)


def test_bf16_steps_compute_in_bfloat16_and_keep_float32_weights():
    """precision bf16: the forward runs under bfloat16 autocast, the loss is float32, the
    weights and their update stay float32, with no loss scaler; auto and fp32 on the CPU
    compute in float32. Unknown precisions are refused; "auto" is not stored."""
    from ser.models import create_model
    from ser.training import TrainStep, autocast_dtype, check_precision

    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    assert autocast_dtype("auto", torch.device("cuda")) == torch.float16
    assert autocast_dtype("fp32", torch.device("cuda")) is None
    x = torch.randn(8, 1, 128, 216)
    y = torch.arange(8) % 6
    for precision, logits_dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32),
                                    ("auto", torch.float32)):
        torch.manual_seed(0)
        model = create_model("lenet2d")
        before = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        step = TrainStep(model, opt, None, 0.0, 0.0, cpu, precision=precision)
        assert step.scaler is None
        loss, logits = step((x,), y)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        assert logits.dtype == logits_dtype, precision
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert isinstance(check_precision("bf16", cpu), str)  # a note at most, never an error
    assert check_precision("auto", cpu) == check_precision("fp32", cpu) == ""
    # What the Train page shows under its Precision choice, before a launch.
    from ser.training import cpu_has_bf16, precision_problem

    note = precision_problem("bf16", "cpu")
    assert ("is emulated" in note) == (not cpu_has_bf16())
    assert precision_problem("fp32", "cpu") == precision_problem("auto", "auto") == ""
    if not torch.cuda.is_available():
        assert "no CUDA GPU is available" in precision_problem("bf16", "cuda")
    with pytest.raises(ValueError, match="precision must be auto, bf16, fp32"):
        TrainConfig(arch="lenet2d", precision="fp16").check()
    assert "precision" not in TrainConfig(arch="lenet2d").as_dict()
    assert TrainConfig(arch="lenet2d", precision="bf16").as_dict()["precision"] == "bf16"


def test_weight_averaging_option_is_checked_and_stored_only_when_on():
    with pytest.raises(ValueError, match="swa"):
        TrainConfig(arch="lenet1d", epochs=3, swa=4).check()
    assert "swa" not in TrainConfig(arch="lenet1d").as_dict()
    assert TrainConfig(arch="lenet1d", epochs=3, swa=2).as_dict()["swa"] == 2


@pytest.mark.slow
def test_weight_average_of_the_last_epochs_competes_on_validation(demo_root):
    """SWA: the mean of the last epochs' weights (BatchNorm re-measured) replaces the best
    epoch only when its validation UAR is higher, and the card says which won."""
    from ser.dataset import predict_proba, prepare
    from ser.metrics import classification_metrics

    cfg = TrainConfig(arch="ser2d", epochs=3, swa=2, max_clips=150, noise=False, seed=3,
                      batch_size=32, schedule="cosine", lr=2e-3)
    res = fit(cfg)
    swa = res.card.run["swa"]
    assert swa["epochs"] == 2 and 0 <= swa["val_uar"] <= 1
    assert swa["best_epoch_val_uar"] == max(e["val_uar"] for e in res.history)
    assert res.card.metrics["val_uar_best"] == max(swa["val_uar"], swa["best_epoch_val_uar"])
    assert swa["kept"] == (swa["val_uar"] > swa["best_epoch_val_uar"])
    # the returned weights are the winner: they score the claimed validation UAR
    data = prepare(cfg, cfg.input_space())
    uar = classification_metrics(data.labels["val"].numpy(),
                                 predict_proba(res.model, data.inputs["val"], "cpu"))["uar"]
    assert uar == pytest.approx(res.card.metrics["val_uar_best"], abs=1e-9)
    # the Results table says what the average did
    from ser.zoo import ModelEntry, table

    text = table([ModelEntry(name="m", source="run", bundle=None, card=res.card)]
                 )["weight average"][0]
    assert text.startswith("kept" if swa["kept"] else "not kept") and "last 2 epochs" in text


def test_one_speaker_batches_hold_one_speaker_and_every_row_once():
    """batches="speaker": every batch comes from one group, each row is drawn once per
    epoch, no batch has a single row, the step count is fixed and the draw is seeded."""
    from ser.training import Batches

    groups = np.array(["crema-d:1001"] * 20 + ["tess:OAF"] * 25 + ["savee:DC"] * 9)
    x, y = torch.arange(len(groups), dtype=torch.float32)[:, None], torch.arange(len(groups))

    def draw(seed):
        b = Batches((x,), y, 8, torch.device("cpu"), seed, groups=groups)
        out = []
        for epoch in (1, 2):
            b.set_epoch(epoch)
            out.append([yb.tolist() for _, _, yb in b.epoch()])
        return b.steps_per_epoch, out

    steps, epochs = draw(5)
    assert steps == 3 + 4 + 2
    for batches in epochs:
        assert len(batches) == steps
        assert sorted(i for b in batches for i in b) == list(range(len(groups)))
        assert all(len(set(groups[b])) == 1 and len(b) >= 2 for b in batches)
    assert epochs[0] != epochs[1]
    assert draw(5) == (steps, epochs)
    # a speaker with a single row joins a batch instead of making a batch of one
    lone = np.append(groups, "urdu:SM1")
    b = Batches((torch.zeros(len(lone), 1),), torch.arange(len(lone)), 8,
                torch.device("cpu"), 0, groups=lone)
    b.set_epoch(1)
    sizes = [len(yb) for _, _, yb in b.epoch()]
    assert len(sizes) == b.steps_per_epoch == steps and sum(sizes) == len(lone)
    assert min(sizes) >= 2
    with pytest.raises(ValueError, match="without weights"):
        Batches((x,), y, 8, torch.device("cpu"), 0, np.ones(len(groups)), groups=groups)


def test_one_speaker_batches_option_is_checked_and_stored_only_when_on():
    assert "batches" not in TrainConfig(arch="ser2d").as_dict()
    assert TrainConfig(arch="ser2d", batches="speaker").check().as_dict()["batches"] == "speaker"
    with pytest.raises(ValueError, match="mixed or speaker"):
        TrainConfig(arch="ser2d", batches="corpus").check()
    with pytest.raises(ValueError, match="balance none"):
        TrainConfig(arch="ser2d", batches="speaker", balance="corpus").check()
    with pytest.raises(ValueError, match="one process"):
        TrainConfig(arch="ser2d", batches="speaker", nproc=2).check()


@pytest.mark.slow
def test_a_run_with_one_speaker_batches_trains_and_records_it(demo_root, tmp_path):
    """Through the command line, as a user would: the card keeps the option, so
    ``--config card.json`` repeats the run."""
    env = {**os.environ, "SER_RUNS_DIR": str(tmp_path / "runs")}
    out = tmp_path / "m.pt"
    r = subprocess.run([sys.executable, "-m", "ser", "train", "--arch", "ser2d", "--epochs",
                        "1", "--max-clips", "120", "--no-noise", "--batch-size", "16",
                        "--batches", "speaker", "--data", str(demo_root), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    card = load_bundle(out).card
    assert card.training.batches == "speaker"


def test_a_cli_run_waiting_for_a_training_slot_says_so(demo_root, tmp_path):
    """Regression: a second `train` started while the only slot (--max-parallel 1) was taken
    sat queued without a word, looking hung. It now says it is queued and why, starts when
    the slot frees, and Ctrl-C while queued leaves the run cancelled rather than queued."""
    import fcntl
    import queue
    import signal
    import threading

    env = dict(os.environ, SER_RUNS_DIR=str(tmp_path / "runs"))
    slots = tmp_path / "runs" / ".slots"
    slots.mkdir(parents=True)
    cmd = [sys.executable, "-m", "ser", "train", "--data", str(demo_root), "--arch", "lenet1d",
           "--epochs", "1", "--no-noise", "--max-parallel", "1"]

    def start_queued():
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        t0 = time.time()
        while True:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None and time.time() - t0 < 120, proc.stderr.read()
                continue
            if "is queued" in line:
                return proc, line

    held = open(slots / "slot0.lock", "w")  # another run holds the only slot
    fcntl.flock(held, fcntl.LOCK_EX)
    proc, line = start_queued()
    assert "the training slot is taken" in line and "--max-parallel" in line
    held.close()  # the other run ends: this one starts and finishes
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    (run_id,) = [p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert json.loads((tmp_path / "runs" / run_id / "status.json").read_text())["state"] \
        == "finished"

    held = open(slots / "slot0.lock", "w")
    fcntl.flock(held, fcntl.LOCK_EX)
    proc, _ = start_queued()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    held.close()
    states = {json.loads((p / "status.json").read_text())["state"]
              for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")}
    assert states == {"finished", "cancelled"}


def test_vote_weight_option_is_checked_and_stored_only_when_on():
    assert "vote_weight" not in TrainConfig(arch="ser2d").as_dict()
    assert TrainConfig(arch="ser2d", vote_weight=0.25).check().as_dict()["vote_weight"] == 0.25
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=r"vote_weight .* must be in \(0, 1\]"):
            TrainConfig(arch="ser2d", vote_weight=bad).check()
    with pytest.raises(ValueError, match="one-speaker batches"):
        TrainConfig(arch="ser2d", vote_weight=0.5, batches="speaker").check()


@pytest.mark.slow
def test_a_run_weighted_by_the_raters_votes_trains_and_records_it(demo_root, tmp_path):
    """Through the command line: the run draws by the raters' votes and its card keeps the
    option; a corpus without votes is refused with a message naming what is missing."""
    env = {**os.environ, "SER_RUNS_DIR": str(tmp_path / "runs")}
    crema_with_votes(tmp_path / "crema")
    out = tmp_path / "m.pt"
    common = [sys.executable, "-m", "ser", "train", "--arch", "lenet1d", "--epochs", "1",
              "--no-noise", "--batch-size", "16", "--split", "random", "--vote-weight", "0.25"]
    r = subprocess.run([*common, "--data", str(tmp_path / "crema"), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_bundle(out).card.training.vote_weight == 0.25
    r = subprocess.run([*common, "--data", str(demo_root), "--max-clips", "60"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode != 0
    assert "needs the crowd raters' votes" in r.stderr and "Traceback" not in r.stdout + r.stderr
    made = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    assert len(made) == 1  # the second was refused before its run folder existed


def test_pitch_range_option_widens_the_copies_shift_and_keys_its_own_cache():
    """``pitch_range``: each copy's pitch shift is drawn in ± that many semitones. The
    default keeps the shipped models' ±2 and their cached copies; another range is stored on
    the card and caches its copies apart."""
    from ser.augment import AugmentConfig, augment_waveform

    default = TrainConfig(arch="ser2d", pitch=True)
    assert "pitch_range" not in default.as_dict()
    assert default.augment().as_dict() == AugmentConfig(noise=True, pitch=True).as_dict()
    wide = TrainConfig(arch="ser2d", pitch=True, pitch_range=4).check()
    assert wide.as_dict()["pitch_range"] == 4
    assert wide.augment().as_dict() == {**default.augment().as_dict(), "pitch_semitones": 4}
    assert "pitch ±4 st" in wide.describe_augmentation()
    for bad in (0, -1, 13):
        with pytest.raises(ValueError, match="pitch_range"):
            TrainConfig(arch="ser2d", pitch=True, pitch_range=bad).check()
    # On a real tone: every shift stays inside ±4 semitones and some go past ±2.
    sr = 22050
    t = np.arange(sr) / sr
    y = (0.5 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)

    def semitones(z):
        spec = np.abs(np.fft.rfft(z * np.hanning(len(z))))
        return 12 * np.log2(np.fft.rfftfreq(len(z), 1 / sr)[spec.argmax()] / 220.0)

    pitch_only = dataclasses.replace(wide.augment(), noise=False)
    shifts = [semitones(augment_waveform(y, sr, pitch_only, f"clip{i}"))
              for i in range(8)]
    assert all(abs(s) <= 4.2 for s in shifts) and max(map(abs, shifts)) > 2.2, shifts
