"""Studies (grids of runs over seeds, adoption of existing runs, verdicts) and the
variable-length input the `length` study needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import open_page
from conftest import tone, write_clip

from ser import runs, studies
from ser.fileio import read_json, write_json
from ser.recipe import TrainConfig
from ser.studies import Claim, Grid, Study

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def runs_root(tmp_path, monkeypatch):
    """An empty runs folder of this test's own."""
    d = tmp_path / "runs"
    monkeypatch.setenv("SER_RUNS_DIR", str(d))
    return d


def cli_config(*argv: str) -> TrainConfig:
    """The config `python -m ser train ARGV` would run (the CLI's own parser)."""
    from ser.cli import build_parser
    from ser.cli.model_commands import _config_from_args

    return _config_from_args(build_parser().parse_args(["train", *argv]))


def set_state(run_id: str, state: str, *, accuracy: float | None = None,
              uar: float | None = None, val_uar: float | None = None) -> None:
    """Move a run to ``state`` the way `ser.runs` writes it (status.json; on finishing a
    report.json and an epoch line in metrics.jsonl)."""
    d = runs.run_dir(run_id)
    st = read_json(d / "status.json")
    st.update(state=state, pid=None, ended="2026-01-01T00:00:00")
    write_json(d / "status.json", st)
    if accuracy is not None:
        write_json(d / "report.json", {
            "n": 1558, "accuracy": accuracy, "uar": uar if uar is not None else accuracy,
            "macro_f1": accuracy, "macro_precision": accuracy, "loss": 1.0,
            "protocol": {"protocol": "speaker", "protocol_name": "speaker-independent",
                         "speakers": {"test": [str(1000 + i) for i in range(19)]}},
            "data": {"corpus": "CREMA-D", "synthetic": False}})
        with open(d / "metrics.jsonl", "w") as f:
            f.write(json.dumps({"type": "epoch", "epoch": 1, "val_uar": val_uar or accuracy,
                                "val_accuracy": val_uar or accuracy}) + "\n")


# ------------------------------------------------------------------------ expansion

def test_builtin_studies_expand_to_cells_times_seeds():
    assert {"activation", "learning-rate", "length"} <= set(studies.list_studies())
    act = studies.get_study("activation")
    plan = studies.expand(act, "/data/crema-d")
    assert [p.config for p in plan] == act.expand("/data/crema-d")
    assert len(plan) == 6 * 3 and len(act.seeds) >= 3
    # seeds outermost: every cell gets its first seed before any gets its second
    assert [p.seed for p in plan[:6]] == [0] * 6
    cells = {(p.cell["arch"], p.cell["activation"], p.cell["lr"], p.cell["epochs"])
             for p in plan}
    assert ("gn1d", "elu", 0.01, 10) in cells and ("gn2d", "silu", 0.001, 3) in cells
    assert len(cells) == 6
    for p in plan:
        assert p.config.split == "speaker" and p.config.data == "/data/crema-d"
        assert p.config.study == {"name": "activation", "cell": p.cell}
        assert p.config.as_dict()["study"]["name"] == "activation"
    length = studies.expand(studies.get_study("length"))
    assert sorted({p.config.length for p in length}) == ["fixed", "variable"]
    assert all(p.config.arch == "combined" and p.config.epochs == 2 for p in length)
    lr = studies.get_study("learning-rate")
    assert {p.cell["lr"] for p in studies.expand(lr)} == {0.01, 0.001, 0.0001}
    assert {p.config.arch for p in studies.expand(lr)} == {"gn1d", "gn2d", "combined"}
    # the combined model at lr 0.001 is the length study's fixed-length cell: one set of
    # runs serves both (the study tag and run name aside, the configs are equal)
    def untagged(plans):
        return sorted(json.dumps({k: v for k, v in p.config.as_dict().items()
                                  if k not in ("study", "name")}, sort_keys=True)
                      for p in plans)

    shared = [p for p in studies.expand(lr) if p.config.arch == "combined"
              and p.cell["lr"] == 0.001]
    assert untagged(shared) == untagged([p for p in length if p.config.length == "fixed"])
    # the full-length twin leaves the epochs to the seed defaults (30 for 1D, 20 for 2D)
    full = studies.expand(studies.get_study("activation-full"))
    assert {(p.config.arch, p.config.resolved_epochs()) for p in full} == {("gn1d", 30),
                                                                          ("gn2d", 20)}
    assert "activation-full" in act.full_command()


def test_expanded_configs_equal_the_cli_flags_they_stand_for(tmp_path):
    corpus = tmp_path / "crema-d"
    corpus.mkdir()
    for p in studies.expand(studies.get_study("activation"), str(corpus)):
        c = p.config
        by_hand = cli_config("--arch", c.arch, "--activation", c.activation, "--lr",
                             str(c.lr), "--epochs", str(c.epochs), "--seed", str(c.seed),
                             "--split", "speaker", "--data", str(corpus), "--threads", "1")
        assert studies.matches(by_hand.as_dict(), c)
        other = cli_config("--arch", c.arch, "--activation", c.activation, "--lr",
                           str(c.lr), "--epochs", str(c.epochs + 1), "--seed", str(c.seed),
                           "--data", str(corpus))
        assert not studies.matches(other.as_dict(), c)


def test_length_option_is_absent_at_its_default_and_old_configs_read_as_fixed():
    assert "length" not in TrainConfig().as_dict() and "study" not in TrainConfig().as_dict()
    assert TrainConfig(length="variable").as_dict()["length"] == "variable"
    old = TrainConfig().as_dict()
    assert TrainConfig.from_dict(old).length == "fixed"
    from ser.card import Card

    card = Card.from_dict({"arch": "gn2d", "input_space": "fs2", "training": old})
    assert card.training.length == "fixed"
    assert "length" not in card.to_dict()["training"]
    with pytest.raises(ValueError, match="length"):
        TrainConfig(length="stretchy").check()


# ------------------------------------------------------------------------ adoption, resume

def test_existing_runs_are_adopted_by_matching(runs_root, tmp_path, monkeypatch):
    corpus = tmp_path / "corpora" / "crema-d"
    corpus.mkdir(parents=True)
    link = tmp_path / "link-to-crema"
    link.symlink_to(corpus)
    study = studies.get_study("activation")
    # made by hand, with other names, threads and device, the corpus through a symlink,
    # a relative path and a pool string
    monkeypatch.chdir(tmp_path)
    made = {
        ("gn2d", "relu", 0): runs.create(cli_config(
            "--arch", "gn2d", "--activation", "relu", "--lr", "0.001", "--epochs", "3",
            "--seed", "0", "--split", "speaker", "--data", str(link), "--threads", "1",
            "--name", "study-act-gn2d-relu-s0")),
        ("gn2d", "silu", 0): runs.create(cli_config(
            "--arch", "gn2d", "--activation", "silu", "--lr", "0.001", "--epochs", "3",
            "--seed", "0", "--data", "corpora/crema-d", "--device", "cpu")),
        ("gn1d", "elu", 1): runs.create(cli_config(
            "--arch", "gn1d", "--activation", "elu", "--lr", "0.01", "--epochs", "10",
            "--seed", "1", "--data", f"crema-d={corpus}")),
        # differs in a training option: not adopted
        ("gn1d", "relu", 0): runs.create(cli_config(
            "--arch", "gn1d", "--activation", "relu", "--lr", "0.01", "--epochs", "10",
            "--seed", "0", "--data", str(corpus), "--no-noise")),
        # failed: covers nothing
        ("gn2d", "elu", 0): runs.create(cli_config(
            "--arch", "gn2d", "--activation", "elu", "--lr", "0.001", "--epochs", "3",
            "--seed", "0", "--data", str(corpus))),
    }
    set_state(made[("gn2d", "relu", 0)], "finished", accuracy=0.5)
    set_state(made[("gn1d", "elu", 1)], "running")
    set_state(made[("gn2d", "elu", 0)], "failed")
    plan = studies.plan(study, str(corpus))
    state = {(p.cell["arch"], p.cell["activation"], p.seed): (p.state, p.run and
                                                              p.run["run_id"]) for p in plan}
    assert state[("gn2d", "relu", 0)] == ("finished", made[("gn2d", "relu", 0)])
    assert state[("gn2d", "silu", 0)] == ("queued", made[("gn2d", "silu", 0)])
    assert state[("gn1d", "relu", 0)] == ("missing", None)
    assert state[("gn2d", "elu", 0)] == ("missing", None)
    assert state[("gn1d", "elu", 1)] == ("running", made[("gn1d", "elu", 1)])
    counts = studies.progress(plan)
    assert counts == {"finished": 1, "running": 1, "queued": 1, "missing": 15, "total": 18}


def test_resume_skips_covered_cells_and_relaunches_failed_ones(runs_root, tmp_path):
    study = Study("tiny", "tiny", "", grids=(Grid({"arch": "lenet1d", "epochs": 1},
                                                  {"lr": [0.01, 0.001]}),), seeds=(0, 1))
    created = []

    def start(cfg):  # the queue without its processes: the run folders only
        created.append(runs.create(cfg))
        return created[-1]

    first = studies.launch(study, str(tmp_path), start=start, threads=1)
    assert len(first) == 4
    cfgs = [read_json(runs.run_dir(r) / "config.json") for r in first]
    assert all(c["study"]["name"] == "tiny" and c["threads"] == 1 for c in cfgs)
    assert studies.launch(study, str(tmp_path), start=start) == []  # all queued
    set_state(first[0], "finished", accuracy=0.4)
    set_state(first[1], "failed")
    set_state(first[2], "cancelled")
    again = studies.launch(study, str(tmp_path), start=start)
    assert len(again) == 2  # the failed and the cancelled one
    relaunched = {json.dumps(read_json(runs.run_dir(r) / "config.json")["study"]["cell"],
                             sort_keys=True) for r in again}
    assert relaunched == {json.dumps(c["study"]["cell"], sort_keys=True) for c in cfgs[1:3]}
    assert studies.progress(studies.plan(study, str(tmp_path)))["queued"] == 3


# ------------------------------------------------------------------------ verdicts

def _cells(values: dict[str, list[float]]) -> list[dict]:
    out = []
    for act, vals in values.items():
        n = len(vals)
        mean = sum(vals) / n if n else None
        std = float(np.std(vals, ddof=1)) if n >= 2 else None
        stat = {"mean": mean, "std": std, "values": vals}
        out.append({"cell": {"arch": "gn2d", "activation": act}, "label": act, "n_seeds": n,
                    "test_accuracy": stat})
    return out


CLAIM = Claim("silu", "SiLU is best", {"arch": "gn2d"}, "activation", ("silu",))


def test_verdicts_follow_the_welch_rule():
    confirmed = studies.verdict(CLAIM, _cells({"relu": [0.50, 0.51, 0.52],
                                               "silu": [0.60, 0.61, 0.62],
                                               "elu": [0.55, 0.56, 0.54]}))
    assert confirmed["verdict"] == "confirmed" and confirmed["p_value"] < 0.05
    assert confirmed["claimed"] == "silu" and confirmed["rival"] == "elu"
    refuted = studies.verdict(CLAIM, _cells({"relu": [0.60, 0.61, 0.62],
                                             "silu": [0.50, 0.51, 0.52],
                                             "elu": [0.40, 0.41, 0.42]}))
    assert refuted["verdict"] == "not confirmed" and "relu" in refuted["detail"]
    noisy = studies.verdict(CLAIM, _cells({"relu": [0.50, 0.60, 0.55],
                                           "silu": [0.52, 0.62, 0.57],
                                           "elu": [0.40, 0.41, 0.42]}))
    assert noisy["verdict"] == "within noise" and noisy["p_value"] >= 0.05
    # better by the mean but within noise is still within noise, never "confirmed"
    one_seed = studies.verdict(CLAIM, _cells({"relu": [0.50, 0.51], "silu": [0.70],
                                              "elu": [0.40, 0.41]}))
    assert one_seed["verdict"] == "incomplete" and "silu" in one_seed["detail"]


def test_report_aggregates_seeds_and_marks_incomplete_cells(runs_root, tmp_path):
    study = Study("toy", "Toy", "d", grids=(Grid({"arch": "gn2d", "epochs": 1},
                                                 {"activation": ["relu", "silu"]}),),
                  seeds=(0, 1, 2), claims=(CLAIM,), schedule="1 epoch")
    made = {}
    for p in studies.expand(study, str(tmp_path)):
        made[(p.cell["activation"], p.seed)] = runs.create(p.config)
    acc = {("relu", 0): 0.50, ("relu", 1): 0.52, ("relu", 2): 0.51,
           ("silu", 0): 0.60, ("silu", 1): 0.62}
    for key, a in acc.items():
        set_state(made[key], "finished", accuracy=a, uar=a - 0.1)
    rep = studies.report(study, str(tmp_path))
    by = {c["label"]: c for c in rep["cells"]}
    assert by["relu"]["n_seeds"] == 3 and by["silu"]["n_seeds"] == 2
    assert by["relu"]["test_accuracy"]["mean"] == pytest.approx(0.51)
    assert by["relu"]["test_accuracy"]["std"] == pytest.approx(0.01)
    assert by["silu"]["test_uar"]["mean"] == pytest.approx(0.51)
    assert rep["claims"][0]["verdict"] == "confirmed"
    assert rep["progress"]["finished"] == 5 and rep["progress"]["queued"] == 1
    sentence = studies.protocol_sentence(rep)
    assert "CREMA-D speaker-independent split, 19 test speakers, 1,558 test clips" in sentence
    assert "1 epoch" in sentence
    dest = studies.ship(study, str(tmp_path), folder=tmp_path / "shipped")
    assert studies.shipped_reports(tmp_path / "shipped")["toy"]["cells"] == \
        json.loads(json.dumps(rep["cells"]))
    assert not list(dest.parent.glob("*.tmp*"))


@pytest.mark.slow
def test_tiny_real_study_on_the_demo_corpus(runs_root, demo_root):
    """Real subprocess training through the queue: launch, follow to the end, report."""
    study = Study("demo", "Demo", "", seeds=(0, 1),
                  grids=(Grid({"arch": "lenet1d", "epochs": 1, "max_clips": 90,
                               "noise": False}, {"lr": [0.01, 0.001]}),),
                  claims=(Claim("lr", "0.01 is best", {"arch": "lenet1d"}, "lr", (0.01,)),))
    ids = studies.launch(study, None, threads=1)
    assert len(ids) == 4
    end = time.time() + 300
    while time.time() < end:
        counts = studies.progress(studies.plan(study, None))
        if counts["finished"] + counts["missing"] == 4:
            break
        time.sleep(0.5)
    assert counts["finished"] == 4, [runs.log_tail(r, 20) for r in ids]
    assert studies.launch(study, None) == []
    rep = studies.report(study, None)
    assert all(c["complete"] and c["n_seeds"] == 2 for c in rep["cells"])
    assert all(c["val_uar"]["mean"] is not None for c in rep["cells"])
    assert rep["claims"][0]["verdict"] in ("confirmed", "not confirmed", "within noise")
    assert rep["protocol"]["synthetic"] is True


@pytest.mark.slow
def test_cli_study_list_status_report(runs_root, tmp_path):
    env = dict(os.environ, SER_RUNS_DIR=str(runs_root))
    run = lambda *a: subprocess.run([sys.executable, "-m", "ser", "study", *a], cwd=ROOT,  # noqa: E731
                                    env=env, capture_output=True, text=True, timeout=120)
    out = run("list")
    assert out.returncode == 0 and "activation" in out.stdout and "length" in out.stdout
    out = run("status", "length", "--data", str(tmp_path))
    assert out.returncode == 0 and "0/6 finished" in out.stdout and "6 missing" in out.stdout
    out = run("report", "length", "--data", str(tmp_path), "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0 and "INCOMPLETE" in out.stdout
    assert json.loads((tmp_path / "r.json").read_text())["study"] == "length"


# ------------------------------------------------------------------------ variable length

def test_variable_length_features_keep_each_clips_frames(tmp_path):
    from ser.features import LENGTH_KEY
    from ser.store import FeatureStore

    paths = [str(write_clip(tmp_path / f"c{i}.wav", seconds=s))
             for i, s in enumerate((0.2, 1.0, 3.0, 7.0))]
    store = FeatureStore(tmp_path / "cache", length="variable", workers=1)
    feats = store.features(paths)
    frames = feats[LENGTH_KEY]
    assert frames[0] == 32  # padded up to the models' minimum
    assert frames[1] < frames[2] < frames[3] and frames[3] > 216  # not cropped to 216
    assert feats["fs2"].shape == (4, 128, frames.max())
    assert np.all(feats["fs2"][1, :, frames[1]:] == -80.0)  # padded with the floor
    again = store.features(paths)  # from the cache
    assert np.array_equal(again[LENGTH_KEY], frames)
    assert np.array_equal(np.asarray(again["fs2"]), feats["fs2"])
    fixed = FeatureStore(tmp_path / "cache", workers=1).features(paths)
    assert fixed["fs2"].shape == (4, 128, 216) and LENGTH_KEY not in fixed
    assert len([d for d in (tmp_path / "cache").iterdir()
                if d.is_dir() and d.name != "copies"]) == 2


def test_bucketed_batches_cover_every_clip_once_trimmed_to_their_longest():
    from ser.dataset import Inputs
    from ser.training import Batches

    lengths = np.array([40, 200, 41, 199, 60, 120, 121, 61, 90, 35] * 3)
    x = torch.randn(len(lengths), 1, 8, 200)
    inputs = Inputs([x], lengths)
    b = Batches(inputs, torch.arange(len(lengths)), 4, torch.device("cpu"), seed=3)
    b.set_epoch(1)
    seen = []
    for _, xb, yb in b.epoch():
        rows = yb.numpy()
        assert xb[0].shape[-1] == lengths[rows].max()
        seen += list(rows)
    assert sorted(seen) == list(range(len(lengths)))
    assert len(seen) / 4 <= b.steps_per_epoch


def test_variable_length_refused_for_fixed_input_architectures(runs_root):
    with pytest.raises(ValueError, match="variable-length input needs"):
        runs.create(TrainConfig(arch="lenet2d", length="variable"))
    with pytest.raises(ValueError, match="variable-length input needs"):
        runs.create(TrainConfig(arch="gn1d", length="variable"))


@pytest.mark.slow
def test_variable_length_training_end_to_end(runs_root, demo_root, tmp_path):
    """The CLI trains a variable-length combined model on the demo corpus; the bundle
    scores clips of different lengths at their own length."""
    env = dict(os.environ, SER_RUNS_DIR=str(runs_root), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "ser", "train", "--arch", "combined",
                          "--length", "variable", "--epochs", "1", "--max-clips", "90",
                          "--threads", "1", "--no-noise"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = [d for d in runs_root.iterdir() if (d / "model.pt").exists()]
    card = json.loads((run_dir / "card.json").read_text())
    assert card["training"]["length"] == "variable"
    from ser.inference import Predictor

    pred = Predictor(run_dir / "model.pt")
    assert pred.length == "variable"
    seen = []
    for seconds in (0.5, 2.0, 8.0):
        y = np.asarray(write_clip_samples(seconds), np.float32)
        p = pred.predict_samples(y, 22050)
        assert p.probs.shape == (6,) and abs(p.probs.sum() - 1) < 1e-5
        assert len(p.window_probs) == 1  # scored whole, at its own length
        assert p.window_s == pytest.approx(seconds, abs=0.01)
        seen.append(p.probs)
    assert not np.allclose(seen[0], seen[2])
    # the same clip padded to 216 frames would be scored differently from its own length
    from ser.dataset import model_inputs
    from ser.features import clip_features

    y = write_clip_samples(2.0)
    own = model_inputs(clip_features(y, length="variable"), "fs1+fs2", pred.norm)
    padded = model_inputs(clip_features(y), "fs1+fs2", pred.norm)
    assert own[1].shape[-1] < 216 and padded[1].shape[-1] == 216
    # evaluation of the bundle on its own split goes through the same path
    from ser.bundle import load_bundle
    from ser.evaluation import evaluate_bundle

    rep, _ = evaluate_bundle(load_bundle(run_dir / "model.pt"))
    assert rep["accuracy"] == pytest.approx(json.loads((run_dir / "report.json")
                                                       .read_text())["accuracy"])


def write_clip_samples(seconds: float) -> np.ndarray:
    return tone(seconds, sr=22050)


# ------------------------------------------------------------------------ the page

def _shipped_report(models_dir: Path) -> dict:
    rep = {"study": "activation", "title": "Which activation is best? (ReLU, SiLU, ELU)",
           "description": "desc", "schedule": "shortened CPU schedule: gn1d 10 epochs",
           "seeds": [0, 1, 2], "axes": ["arch", "activation"],
           "noise_rule": studies.NOISE_RULE, "alpha": 0.05, "min_seeds": 2,
           "command": "python -m ser study run activation --data DIR",
           "full_command": "python -m ser study run activation-full --data DIR",
           "seed_source": studies.SEED_NOTE,
           "protocol": {"corpus": "CREMA-D", "protocol_name": "speaker-independent",
                        "test_speakers": 19, "test_clips": 1558, "synthetic": False,
                        "mixed": False},
           "progress": {"finished": 5, "running": 0, "queued": 0, "missing": 1, "total": 6},
           "cells": _cells({"relu": [0.50, 0.51, 0.52], "silu": [0.60, 0.61, 0.62],
                            "elu": [0.55]}),
           "claims": [], "created": "now"}
    for c in rep["cells"]:
        c.update(planned_seeds=3, complete=c["n_seeds"] >= 2, seed_reported=None,
                 runs=[], seeds=[], test_uar=c["test_accuracy"], val_uar=c["test_accuracy"],
                 val_accuracy=c["test_accuracy"])
        c["label"] = f"gn2d · {c['label']}"
    rep["cells"][1]["seed_reported"] = 0.641
    rep["claims"] = [{"id": "silu-2d", "text": "SiLU is the best activation for the 2D CNN",
                      "metric": "test_accuracy", "metric_name": "test accuracy",
                      "verdict": "confirmed", "p_value": 0.001, "claimed": "gn2d · silu",
                      "rival": "gn2d · relu", "detail": "gn2d · silu 61.0 % vs …"}]
    (models_dir / "studies").mkdir()
    write_json(models_dir / "studies" / "activation.json", rep)
    return rep


def test_studies_page_shows_a_shipped_study(models_dir, runs_root):
    _shipped_report(models_dir)
    at = open_page("pages/studies.py", clean=True)
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "SiLU is the best activation for the 2D CNN" in text and "confirmed" in text
    assert "Welch" in text
    assert "CREMA-D speaker-independent split, 19 test speakers, 1,558 test clips" in text
    assert "python -m ser study run activation-full" in " ".join(c.value for c in at.code)
    table = at.dataframe[0].value
    assert list(table["cell"]) == ["gn2d · relu", "gn2d · silu", "gn2d · elu"]
    assert table.loc[2, "status"].startswith("incomplete")
    assert table.loc[1, "seed write-up %"] == "64.1"
    assert at.get("plotly_chart")


def test_studies_page_empty_state(models_dir, runs_root):
    at = open_page("pages/studies.py", clean=True)
    assert "No study has been shipped or run yet" in at.info[0].value
    assert "python -m ser study run activation" in at.info[0].value


def test_train_page_queues_a_study_and_shows_its_progress(models_dir, runs_root, monkeypatch):
    launched = []

    def fake_start(cfg, *, max_parallel=1):  # the run folders, without training processes
        launched.append(runs.create(cfg))
        return launched[-1]

    monkeypatch.setattr(runs, "start", fake_start)
    at = open_page("pages/train.py", clean=True)
    at.selectbox(key="train_study").set_value("length").run()
    bars = [p for p in at.get("progress") if "to launch" in p.proto.text]
    assert bars and "0/6 finished" in bars[0].proto.text
    at.button(key="train_study_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(launched) == 6
    tags = [read_json(runs.run_dir(r) / "config.json")["study"] for r in launched]
    assert {t["cell"]["length"] for t in tags} == {"fixed", "variable"}
    bars = [p for p in at.get("progress") if "to launch" in p.proto.text]
    assert "6 queued · 0 to launch" in bars[0].proto.text
    assert at.button(key="train_study_launch").disabled


@pytest.mark.slow
def test_cli_study_run_follows_to_the_end_then_ships(runs_root, models_dir, demo_root,
                                                     capsys):
    from ser.cli import main

    with pytest.raises(ValueError, match="at least 3"):
        studies.register(Study("two-seeds", "", "", grids=(), seeds=(0, 1)))
    studies.register(Study("cli-tiny", "CLI tiny", "", seeds=(0, 1, 2), schedule="1 epoch",
                           grids=(Grid({"arch": "lenet1d", "epochs": 1, "max_clips": 90,
                                        "noise": False}, {"lr": [0.01]}),)))
    try:
        assert main(["study", "run", "cli-tiny", "--threads", "1"]) == 0
        out = capsys.readouterr().out
        assert "queued 3 new run(s)" in out and "3/3 finished" in out
        assert main(["study", "run", "cli-tiny", "--detach"]) == 0
        assert "queued 0 new run(s)" in capsys.readouterr().out
        assert main(["study", "ship", "cli-tiny"]) == 0
        shipped = json.loads((models_dir / "studies" / "cli-tiny.json").read_text())
        assert shipped["cells"][0]["n_seeds"] == 3 and shipped["shipped"]
        assert main(["study", "report", "cli-tiny", "--shipped", "--markdown"]) == 0
        table = capsys.readouterr().out
        assert "| cell | seeds | test accuracy %" in table and "| 3/3 |" in table
    finally:
        studies._REGISTRY.pop("cli-tiny", None)


def test_studies_page_shows_live_runs_of_the_sidebar_corpus(models_dir, runs_root):
    made = {}
    for p in studies.expand(studies.get_study("length")):  # the default corpus
        made[(p.cell["length"], p.seed)] = runs.create(p.config)
    for (length, seed), rid in made.items():
        if seed < 2:
            set_state(rid, "finished", accuracy=0.5 + 0.01 * seed
                      + (0.1 if length == "variable" else 0))
    at = open_page("pages/studies.py", clean=True)
    # the learning-rate study's combined cell at lr 0.001 adopts the fixed-length runs too
    assert [o.split(" — ")[0] for o in at.selectbox(key="study_name").options] == [
        "learning-rate", "length"]
    at.selectbox(key="study_name").set_value("length").run()
    text = " ".join(m.value for m in at.markdown)
    assert "Variable-length input beats fixed" in text and "confirmed" in text
    bar = at.get("progress")[0].proto.text
    assert "4/6 runs finished" in bar and "2 queued" in bar
    table = at.dataframe[0].value
    assert list(table["seeds"]) == ["2/3", "2/3"]
    assert list(table["seed write-up %"]) == ["61.3", "62.2"]


def test_variable_inputs_are_scored_each_at_its_own_length():
    from ser.dataset import Inputs, predict_proba
    from ser.models import create_model

    torch.manual_seed(0)
    model = create_model("gn2d").eval()
    lengths = np.array([40, 90, 40, 216, 33])
    x = -3.0 + 0.1 * torch.randn(5, 1, 128, 216)  # a standardised floor, with texture
    probs = predict_proba(model, Inputs([x], lengths))
    with torch.inference_mode():
        alone = np.stack([torch.softmax(model(x[i:i + 1, :, :, :t]), 1)[0].numpy()
                          for i, t in enumerate(lengths)])
    assert np.allclose(probs, alone, atol=1e-5)
    padded = predict_proba(model, (x,))  # every clip at 216 frames: not the same
    assert not np.allclose(padded[:3], alone[:3], atol=1e-3)


def test_fixed_length_cache_keys_are_unchanged(tmp_path):
    from ser.features import DEFAULT
    from ser.store import cache_key

    clip = str(write_clip(tmp_path / "a.wav"))
    fixed = cache_key([clip], DEFAULT, ("fs1", "fs2"), None)
    assert fixed == cache_key([clip], DEFAULT, ("fs1", "fs2"), None, "fixed")
    assert fixed != cache_key([clip], DEFAULT, ("fs1", "fs2"), None, "variable")
