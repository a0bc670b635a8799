"""Warm start (`ser.warmstart`, ``--init``): a run that starts from a trained model's weights
and input normalisation, on real bundles trained on the demo corpus; the checks that refuse
a start which does not fit the run or has heard its validation or test part; the CLI path
in a real subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ser.bundle import load_bundle, save_bundle
from ser.dataset import featurise, prepare
from ser.distributed import Dist
from ser.recipe import TrainConfig
from ser.training import build_model, fit
from ser.warmstart import attach_init, check_init

COMMON = dict(epochs=1, max_clips=150, seed=3, batch_size=32, noise=False)


@pytest.fixture(scope="module")
def start(demo_root, tmp_path_factory):
    """A log-mel model trained on the speaker split of the demo sample, saved as a bundle."""
    res = fit(TrainConfig(arch="lenet2d", **COMMON))
    path = tmp_path_factory.mktemp("start") / "start.pt"
    save_bundle(path, res.model, res.card)
    return path


def test_the_network_starts_from_the_models_weights_and_normalisation(start):
    # With a noise copy of every training clip the run would fit other statistics than the
    # starting model's (trained without copies); it keeps the start's.
    cfg = TrainConfig(arch="lenet2d", init=str(start), **{**COMMON, "noise": True})
    data = attach_init(prepare(cfg, "fs2"), cfg)
    bundle = load_bundle(start)
    for key, value in bundle.normalisation["fs2"].items():  # not refitted on the run's clips
        np.testing.assert_array_equal(data.normalisation["fs2"][key], value)
    # Every part reads as the starting model's own evaluation path would standardise it.
    for part in ("train", "val", "test"):
        expected = featurise(bundle.card, data.selection.part(part))[0]
        torch.testing.assert_close(data.inputs[part][0][:len(expected)], expected,
                                   atol=2e-4, rtol=1e-4)
    model, _ = build_model(cfg, data, torch.device("cpu"), Dist())
    for key, value in bundle.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value.float())
    # From scratch the same recipe fits its own statistics and starts elsewhere.
    plain_cfg = TrainConfig(arch="lenet2d", **{**COMMON, "noise": True})
    plain = attach_init(prepare(plain_cfg, "fs2"), plain_cfg)
    assert plain.init_state is None
    assert not np.array_equal(plain.normalisation["fs2"]["mean"],
                              data.normalisation["fs2"]["mean"])
    fresh, _ = build_model(plain_cfg, plain, torch.device("cpu"), Dist())
    assert not all(torch.equal(fresh.state_dict()[k], v.float())
                   for k, v in bundle.model.state_dict().items())


def test_a_warm_run_records_where_it_started(start):
    res = fit(TrainConfig(arch="lenet2d", init=str(start), **COMMON))
    assert res.card.training.init == str(start)
    sha = load_bundle(start).card.extra["weights_sha256"]
    assert res.card.data["init"] == {"model": "lenet2d", "weights_sha256": sha}
    from ser.zoo import ModelEntry, table

    row = table([ModelEntry("warm", "run", start, res.card, {}, None)]).iloc[0]
    assert row["started from"] == f"{start} (weights {sha[:12]})"  # the Results table says
    plain = fit(TrainConfig(arch="lenet2d", **COMMON))
    assert "init" not in plain.card.training.as_dict()  # older cards stay as they were
    assert "init" not in plain.card.data
    assert table([ModelEntry("plain", "run", start, plain.card, {}, None)]).iloc[0][
        "started from"] is None


def test_a_start_that_does_not_fit_the_run_is_named(start):
    cases = [
        (dict(arch="ser2d"), "is a lenet2d; this run trains a ser2d"),
        (dict(arch="lenet2d", width=2.0), "built differently .*width 1.0 against 2.0"),
        (dict(arch="lenet2d", features={"n_mels": 64}), "other features"),
        (dict(arch="lenet2d", speaker_norm="speaker"), "without speaker normalisation"),
    ]
    for options, message in cases:
        cfg = TrainConfig(init=str(start), **{**COMMON, **options})
        with pytest.raises(ValueError, match=message):
            check_init(cfg)
    with pytest.raises(ValueError, match="names 13 models"):
        check_init(TrainConfig(arch="lenet2d", init="ensemble", **COMMON))
    with pytest.raises(ValueError, match="names no model"):
        check_init(TrainConfig(arch="lenet2d", init="no-such-model", **COMMON))
    with pytest.raises(ValueError, match="cannot be combined with init"):
        TrainConfig(arch="voicelin", readout_l2=1.0, init=str(start), **COMMON).check()


def test_a_start_that_heard_the_runs_test_clips_or_voices_is_refused(start, tmp_path):
    # The start's own split, then a random split: its training clips are in that test part.
    with pytest.raises(ValueError, match=r"trained on \d+ clip\(s\) .*unheard clips"):
        check_init(TrainConfig(arch="lenet2d", init=str(start), split="random", **COMMON))
    # A random-split start: its training voices are every speaker, including those the
    # speaker-independent run tests on, even where it did not train on those very clips.
    res = fit(TrainConfig(arch="lenet2d", split="random", **COMMON))
    shared = tmp_path / "random.pt"
    save_bundle(shared, res.model, res.card)
    with pytest.raises(ValueError, match="validation or test part"):
        check_init(TrainConfig(arch="lenet2d", init=str(shared), **COMMON))
    # The same split is fine.
    assert check_init(TrainConfig(arch="lenet2d", init=str(start), **COMMON)).init


def test_the_cli_fine_tunes_and_refuses_before_a_run_exists(start, demo_root, tmp_path):
    env = {"SER_RUNS_DIR": str(tmp_path / "runs"), "SER_DATA_DIR": str(demo_root)}
    base = [sys.executable, "-m", "ser", "train", "--arch", "lenet2d", "--epochs", "1",
            "--max-clips", "150", "--threads", "1", "--no-noise"]
    env = {**os.environ, **env}
    bad = subprocess.run(base[:5] + ["ser2d"] + base[6:] + ["--init", str(start)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2, bad.stderr
    assert "is a lenet2d; this run trains a ser2d" in bad.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    good = subprocess.run(base + ["--init", str(start), "--out", str(tmp_path / "b.pt")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert good.returncode == 0, good.stderr[-2000:]
    card = load_bundle(tmp_path / "b.pt").card
    assert card.training.init == str(start)
    assert card.data["init"]["model"] == "lenet2d"


def test_train_page_launches_a_run_that_starts_from_a_chosen_model(demo_root, models_dir):
    from app_helpers import open_page

    from ser import runs

    res = fit(TrainConfig(arch="lenet2d", name="demo-start", **COMMON))
    save_bundle(models_dir / "demo-start" / "model.pt", res.model, res.card)
    res = fit(TrainConfig(arch="lenet2d", split="random", name="random-start", **COMMON))
    save_bundle(models_dir / "random-start" / "model.pt", res.model, res.card)
    before = set(runs.root().iterdir()) if runs.root().exists() else set()
    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["lenet1d"]).run()
    # Only starts of the chosen architecture are offered (other tests' finished lenet1d
    # runs may be among them).
    assert not {"demo-start", "random-start"} & set(at.selectbox(key="init").options)
    at.multiselect(key="archs").set_value(["lenet2d"]).run()
    assert "demo-start" in at.selectbox(key="init").options
    # A start that heard the run's test speakers is refused at Launch, nothing queued.
    at.selectbox(key="init").set_value("random-start")
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("validation or test part" in e.value and "Not launched" in e.value
               for e in at.error), [e.value for e in at.error]
    now = set(runs.root().iterdir()) if runs.root().exists() else set()
    assert now == before, "a run was queued"
    at.selectbox(key="init").set_value("demo-start")
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    new = set(runs.root().iterdir()) - before
    assert len(new) == 1, [e.value for e in at.error]
    launched = new.pop()
    runs.kill(launched.name, grace=1)  # its training is not what this test is about
    cfg = json.loads((launched / "config.json").read_text())
    assert cfg["init"] == "demo-start"  # a shipped model by name: the card stays portable


def test_train_page_starts_a_run_from_a_finished_run(demo_root, models_dir):
    from app_helpers import open_page

    from ser import runs

    done = runs.create(TrainConfig(arch="lenet2d", name="own-run", **COMMON))
    assert runs.execute(done, max_parallel=8) == 0  # not queued behind other tests' runs
    bundle = runs.read_run(done)["bundle"]
    before = set(runs.root().iterdir())
    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["lenet2d"]).run()
    at.selectbox(key="init").set_value(f"own-run [{done}]")
    at.button(key="launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    new = set(runs.root().iterdir()) - before
    assert len(new) == 1, [e.value for e in at.error]
    launched = new.pop()
    runs.kill(launched.name, grace=1)
    assert json.loads((launched / "config.json").read_text())["init"] == str(bundle)


def test_a_start_whose_corpus_is_gone_is_judged_by_its_speakers(tmp_path):
    import shutil

    from conftest import write_clip

    first = tmp_path / "savee-a"
    for s_i, spk in enumerate(("DC", "JE", "JK", "KL")):
        for e_i, code in enumerate(("a", "d", "f", "h", "n", "sa")):
            for k in range(1, 4):
                write_clip(first / f"{spk}_{code}{k:02d}.wav", 0.6, 16000,
                           freq=150 + 30 * e_i + 20 * s_i + 4 * k)
    res = fit(TrainConfig(arch="lenet2d", data=str(first), **{**COMMON, "max_clips": 0}))
    path = tmp_path / "savee-start.pt"
    save_bundle(path, res.model, res.card)
    # The same recordings elsewhere, one clip fewer (another manifest), the original gone:
    # the start's training clips cannot be rebuilt, its card still names its voices.
    second = tmp_path / "savee-b"
    shutil.copytree(first, second)
    (second / "KL_sa03.wav").unlink()
    shutil.rmtree(first)
    with pytest.raises(ValueError, match=r"trained on \d speaker\(s\)"):
        check_init(TrainConfig(arch="lenet2d", data=str(second), init=str(path),
                               split="random", **{**COMMON, "max_clips": 0}))
    # The same speaker split keeps its unheard voices unheard: allowed.
    assert check_init(TrainConfig(arch="lenet2d", data=str(second), init=str(path),
                                  **{**COMMON, "max_clips": 0})).init
