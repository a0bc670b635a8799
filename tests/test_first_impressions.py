"""What a new user meets first (issue #18): the pages through AppTest, with copies of a few
shipped model folders (real bundles, reports and per-clip predictions) and the demo corpus.

No training here: everything a page shows comes from the copied folders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from app_helpers import open_page
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
# One random-split model (whose name sorts first) and speaker-independent ones of both
# families, best and worst.
SHIPPED = ["alexnet1d.crema-si", "lenet2d.crema-random", "lenet2d.crema-si",
           "ser2d.crema-si", "sercrnn.crema-si-pitch-stretch-x3", "vgg1d.crema-si"]


@pytest.fixture()
def zoo(tmp_path, monkeypatch):
    d = tmp_path / "models"
    d.mkdir()
    for name in SHIPPED:
        shutil.copytree(REPO / "models" / name, d / name)
    monkeypatch.setenv("SER_MODELS_DIR", str(d))
    # Runs other tests left in the session's runs folder must not reorder the Results page.
    monkeypatch.setenv("SER_RUNS_DIR", str(tmp_path / "runs"))
    return d


def accuracy(name: str) -> float:
    return json.loads((REPO / "models" / name / "report.json").read_text())["accuracy"]



def chart(at: AppTest, key: str) -> dict:
    found = [c for c in at.get("plotly_chart") if c.key == key]
    assert found, f"no chart {key!r}; keys: {[c.key for c in at.get('plotly_chart')]}"
    return json.loads(found[0].proto.spec)


# ------------------------------------------------------------------ Results (item 2)

def test_results_opens_on_speaker_independent_models_best_first(demo_root, zoo):
    at = open_page("pages/results.py", clean=True)
    group = at.selectbox(key="group")
    assert group.value[0] == "speaker-independent", group.value
    si = [n for n in SHIPPED if n.endswith("-si") or "-si-" in n]
    best_first = sorted(si, key=accuracy, reverse=True)
    chosen = [ms for ms in at.multiselect if ms.label.startswith("Models to compare")][0]
    assert chosen.options == best_first
    assert chosen.value == best_first[:3]
    # The table: speaker-independent first, best first; percentages with one decimal.
    table = at.dataframe[0].value
    assert list(table["model"])[:len(si)] == best_first
    assert table["accuracy"].iloc[0] == pytest.approx(100 * accuracy(best_first[0]))
    fmt = at.dataframe[0].proto.columns
    assert '"%.1f%%"' in fmt, fmt
    # The architecture chart: horizontal bars, best at the top, every bar labelled.
    fig = chart(at, "by_architecture")
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    assert all(t["orientation"] == "h" for t in bars)
    assert fig["layout"]["yaxis"]["categoryarray"] == best_first
    labels = [x for t in bars for x in t["text"]]
    assert all(lab.endswith("%") and "." in lab for lab in labels)


def test_results_random_split_is_still_one_choice_away(demo_root, zoo):
    at = open_page("pages/results.py", clean=True)
    group = at.selectbox(key="group")
    index = next(i for i, g in enumerate(group.options) if g.startswith("random"))
    group.select_index(index).run()
    assert not at.exception
    chosen = [ms for ms in at.multiselect if ms.label.startswith("Models to compare")][0]
    assert chosen.value == ["lenet2d.crema-random"]


# ------------------------------------------------------------------ confusion cells (item 3)

def test_confusion_matrix_cells_are_selectable_points():
    """Regression: the cell markers had hoverinfo="skip", which also makes Plotly ignore
    clicks on them, and heatmaps cannot be selected at all."""
    from ser import plots

    fig = plots.confusion([[5, 1, 0, 0, 0, 0]] * 6).to_plotly_json()
    heat, cells = fig["data"]
    assert heat["type"] == "heatmap" and cells["type"] == "scatter"
    assert cells.get("hoverinfo") != "skip" and len(cells["x"]) == 36
    assert fig["layout"]["clickmode"] == "event+select"
    picked = plots.confusion_cells({"selection": {"points": [
        {"curve_number": 1, "x": "sad", "y": "angry"},
        {"curve_number": 1, "x": "sad", "y": "angry"},
        {"curve_number": 0, "x": "fear", "y": "fear"}]}})
    assert picked == [("angry", "sad")]


def test_results_lists_the_clips_of_the_chosen_cell(demo_root, zoo):
    at = open_page("pages/results.py", clean=True)
    at.selectbox(key="cell_true").set_value("angry")
    at.selectbox(key="cell_pred").set_value("angry").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "test clips that are **angry** and were predicted **angry**" in text
    assert "speaker-independent" in text  # the protocol named beside the count


# ------------------------------------------------------------------ Train form (item 4)

def test_train_estimates_split_and_leakage_warning_follow_the_options(demo_root, zoo):
    """The options are live: changing them redraws the split caption, the estimates and
    the random-split warning at once; only Launch starts runs (none is started here)."""
    from ser import runs

    before = {r["run_id"] for r in runs.list_runs()}
    at = open_page("pages/train.py", clean=True)
    assert not [w for w in at.warning if "same speakers" in w.value]
    caption = " ".join(c.value for c in at.caption)
    assert "speaker" in caption.lower() and "train /" in caption
    rows = at.dataframe[0].value
    assert list(rows["architecture"]) == ["lenet2d"]

    at.radio(key="split").set_value("random").run()
    assert [w for w in at.warning if "same speakers" in w.value]
    assert " ".join(c.value for c in at.caption) != caption

    at.multiselect(key="archs").set_value(["lenet2d", "lenet1d"]).run()
    assert list(at.dataframe[0].value["architecture"]) == ["lenet2d", "lenet1d"]
    assert {r["run_id"] for r in runs.list_runs()} == before, "a run started without Launch"


# ------------------------------------------------------------------ progress (item 5)

def test_fit_reports_every_stage_in_order(demo_root):
    """Regression: after "extracting features N/N" nothing new was said until the first
    epoch ended, so the run looked stuck."""
    from ser.recipe import TrainConfig
    from ser.training import fit

    said = []
    fit(TrainConfig(arch="lenet1d", epochs=1, noise=False, batch_size=64),
        progress=lambda stage, done, total: said.append(stage))
    order = list(dict.fromkeys(said))
    assert order[0] == "extracting features"
    assert order[1:] == ["building the model", "training", "validating epoch 1",
                         "testing on the held-out clips"]


def _running_run(stage: str, **extra) -> str:
    """A run folder as a training process leaves it mid-way (this test process plays the
    process, so the run counts as alive)."""
    import os
    import time

    from ser import runs
    from ser.fileio import write_json
    from ser.recipe import TrainConfig

    run_id = runs.create(TrainConfig(arch="lenet1d", epochs=3, noise=False))
    write_json(runs.run_dir(run_id) / "status.json", {
        "state": "running", "pid": os.getpid(), "created_ts": time.time(), "stage": stage,
        "stage_ts": time.time(), **extra})
    return run_id


def test_train_page_says_what_a_running_run_does_now(demo_root, zoo):
    from ser import runs
    from ser.fileio import append_jsonl

    run_id = _running_run("training", stage_done=0, stage_total=3)
    try:
        at = open_page("pages/train.py", clean=True)
        bars = [p.proto.text for p in at.get("progress")]
        assert any("training epoch 1/3: first batches" in t for t in bars), bars
        assert not any("extracting features" in t for t in bars)
        text = " ".join(m.value for m in at.markdown)
        assert "on **" in text  # the run names its corpus
        # One epoch later the curve has an integer epoch axis from 0 to the planned 3.
        append_jsonl(runs.run_dir(run_id) / "metrics.jsonl", {
            "type": "epoch", "epoch": 1, "epochs": 3, "step": 5, "train_loss": 1.7,
            "val_loss": 1.75, "train_accuracy": 0.2, "val_accuracy": 0.2, "val_uar": 0.2,
            "eta_s": 20, "lr": 1e-3, "elapsed_s": 10, "epoch_time_s": 10})
        at.run()
        fig = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                   if str(c.key).startswith(f"curve-{run_id}"))
        xaxis = fig["layout"]["xaxis"]
        assert xaxis["range"][0] == 0 and xaxis["range"][1] >= 3
        assert xaxis["tickformat"] == "d" and xaxis["dtick"] == 1
        assert all("markers" in t["mode"] for t in fig["data"])
    finally:
        runs.cancel(run_id)
        from ser.fileio import write_json

        write_json(runs.run_dir(run_id) / "status.json", {"state": "cancelled"})


def test_a_finished_run_process_is_reaped(demo_root):
    """Regression: a finished training process stayed <defunct> under the server."""
    import time

    from ser import runs
    from ser.recipe import TrainConfig

    run_id = runs.create(TrainConfig(arch="lenet1d", epochs=1, noise=False))
    (runs.run_dir(run_id) / "cancel").write_text("now")  # ends as soon as it starts
    pid = runs.launch(run_id)
    deadline = time.time() + 120
    while Path(f"/proc/{pid}").exists():
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
        assert time.time() < deadline, f"process {pid} still there: {stat[:80]}"
        time.sleep(0.2)
    assert runs.status(run_id)["state"] == "cancelled"


# ------------------------------------------------------------------ Home (item 6)

def test_home_lists_shipped_models_best_first_ours_then_the_seeds(demo_root, zoo):
    at = open_page("pages/welcome.py", clean=True)
    tables = [t.value for t in at.table]
    assert len(tables) == 2, "one table per group, whole (no scroll box)"
    ours, seeds = (list(t["model"]) for t in tables)
    assert ours == ["sercrnn.crema-si-pitch-stretch-x3", "ser2d.crema-si"]
    # Speaker-independent first, best first; the random split after them.
    assert seeds == ["lenet2d.crema-si", "alexnet1d.crema-si", "vgg1d.crema-si",
                     "lenet2d.crema-random"]
    first = tables[0].iloc[0]
    assert first["test accuracy"] == f"{accuracy(ours[0]):.1%}"
    assert first["split"] == "speaker-independent" and first["data"] == "CREMA-D"
    labels = [m.value for m in at.markdown]
    assert labels.index("**SER Studio architectures** — best first") < labels.index(
        "**Seed architectures (the notebooks)** — best first")


# ------------------------------------------------------------------ human accuracy (item 7)

@pytest.fixture()
def voted_crema(tmp_path):
    """A CREMA-D-shaped folder (4 actors × 2 sentences × 6 emotions; 1010 is a test actor
    of the standard speaker-independent split) whose summaryTable.csv votes on four clips:
    two right, one wrong, one tie including the right label."""
    import pandas as pd
    from conftest import write_clip

    audio = tmp_path / "crema" / "AudioWAV"
    for i, spk in enumerate(["1001", "1002", "1003", "1010"]):
        for sent in ("DFA", "IEO"):
            for e, emo in enumerate(["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]):
                write_clip(audio / f"{spk}_{sent}_{emo}_XX.wav", 0.6, freq=150 + 9 * e + i)
    pd.DataFrame({"FileName": ["1001_DFA_ANG_XX", "1002_DFA_SAD_XX", "1003_IEO_HAP_XX",
                               "1001_IEO_FEA_XX"],
                  "VoiceVote": ["A", "S", "N", "F:S"], "VoiceLevel": [50.0] * 4}
                 ).to_csv(audio.parent / "summaryTable.csv")
    return audio.parent


def test_one_human_accuracy_named_the_same_on_home_and_dataset(voted_crema, zoo):
    from ser.metrics import HUMAN_VOICE_RULE

    expected = "62.5% of 4 clips"  # (1 + 1 + 0 + 1/2) / 4
    at = open_page("pages/welcome.py", clean=True)
    at.sidebar.text_input[0].set_value(str(voted_crema)).run()
    assert not at.exception
    home = [m.value for m in at.markdown if m.value.startswith("**Human accuracy")]
    assert len(home) == 1 and expected in home[0] and HUMAN_VOICE_RULE in home[0]
    assert "40.9" not in " ".join(m.value for m in at.markdown)
    at.switch_page("pages/dataset.py")
    at.run()
    assert not at.exception
    data = [m.value for m in at.markdown if m.value.startswith("**Human accuracy")]
    assert len(data) == 1 and expected in data[0] and HUMAN_VOICE_RULE in data[0]


def test_reports_use_the_same_human_accuracy(voted_crema):
    """A model's report (the Results column) computes the figure with the same rule."""
    import numpy as np

    from ser.corpora import load_corpus
    from ser.metrics import full_report, human_voice_baseline

    m = load_corpus(str(voted_crema)).manifest
    y = np.array([config_labels().index(e) for e in m["emotion"]])
    report = full_report(m, y, np.eye(6)[y])
    assert report["human_voice_accuracy"] == pytest.approx(0.625)
    assert human_voice_baseline(m, "test")["accuracy"] == pytest.approx(0.625)


def config_labels():
    from ser.config import LABELS

    return list(LABELS)


# ------------------------------------------------------------------ Predict (item 8)

def test_predict_corpus_clip_of_a_test_speaker_is_called_one(voted_crema, zoo):
    """Regression: every real corpus clip was said to be "maybe in a model's training
    data", also for the test speakers of the models' speaker-independent split."""
    at = open_page("pages/welcome.py", clean=True)
    at.sidebar.text_input[0].set_value(str(voted_crema)).run()
    at.switch_page("pages/predict.py")
    at.run()
    at.selectbox[0].set_value("1010_DFA_ANG_XX").run()
    assert not at.exception
    text = " ".join(c.value for c in at.caption)
    assert "may be in a model's training data" not in text
    assert "Speaker 1010 is a **held-out test speaker** for 5 models" in text
    assert "possibly in the training data of 1 model (`lenet2d.crema-random`)" in text
    at.selectbox[0].set_value("1001_DFA_ANG_XX").run()
    text = " ".join(c.value for c in at.caption)
    assert "heard in training or validation by 5 models" in text


# ------------------------------------------------------------------ microphone (item 9)

@pytest.mark.parametrize("url, blocked", [
    ("http://localhost:8501/predict", False), ("http://127.0.0.1:8501", False),
    ("https://ser.example.org/predict", False), ("http://192.168.1.20:8501/predict", True),
    ("http://myhost:8501", True), (None, False)])
def test_microphone_needs_https_or_localhost(url, blocked):
    from ui.state import mic_blocked_reason

    reason = mic_blocked_reason(url)
    assert (reason is not None) == blocked
    if blocked:
        assert "HTTPS" in reason and "localhost" in reason and "README" in reason


def test_predict_record_tab_offers_streamlits_recorder(demo_root, zoo):
    at = open_page("pages/predict.py", clean=True)
    mics = {m.key for m in at.get("audio_input")}
    assert "mic" in mics  # the Record tab's recorder (the voice panel has "enrol_recorder0")
    assert any("Nothing happens when you click the microphone" in c.value for c in at.caption)


# ------------------------------------------------------------------ Architectures (item 10)

def test_architectures_overview_reads_without_raw_numbers(demo_root, zoo):
    at = open_page("pages/architectures.py", clean=True)
    t = at.table[0].value
    assert list(t.columns) == ["architecture", "name", "from", "input", "parameters",
                               "multiply-adds per clip", "clip length"]
    row = t[t["name"] == "sercrnn"].iloc[0]
    assert row["architecture"] == "SER Studio CRNN: residual CNN + BiGRU + attention pooling"
    assert row["parameters"] == "287 k" and row["clip length"] == "any"
    assert t.iloc[0]["from"] == "SER Studio architectures"


# ------------------------------------------------------------------ speed

def test_scoring_uses_one_cpu_thread_and_restores_the_count(tmp_path):
    """Scoring a clip with two threads beside a training run was ~100× slower (threads
    waiting for each other); a clip is scored on one thread, the process keeps its count."""
    import numpy as np
    import torch

    from ser.devices import inference_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with inference_threads(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        from ser.inference import Predictor

        p = Predictor(REPO / "models" / "lenet2d.crema-si" / "model.pt")
        pred = p.predict_samples(np.zeros(16000 * 3, np.float32) + 1e-3, 16000)
        assert pred.probs.shape == (6,) and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_folders_are_shown_as_a_user_reads_them(monkeypatch):
    """Regression: the sidebar showed absolute paths of whoever ran the app (the README's
    screenshots carried a developer's worktree). Folders inside the project read relative
    to it, folders in the home folder start with ~, anything else stays absolute."""
    from ser import config

    assert config.display_path(config.ROOT / "models") == "models"
    assert config.display_path(config.ROOT / "runs" / "a") == "runs/a"
    assert config.display_path(config.ROOT) == "."
    assert config.display_path("/somewhere/else/runs") == "/somewhere/else/runs"
    home = Path.home()
    if not str(config.ROOT).startswith(str(home)):
        assert config.display_path(home / "corpora" / "tess") == "~/corpora/tess"
        assert config.display_path(home) == "~"
    monkeypatch.setenv("SER_MODELS_DIR", str(config.ROOT / "models"))
    monkeypatch.setenv("SER_RUNS_DIR", "/somewhere/else/runs")
    at = AppTest.from_file(str(REPO / "Home.py"), default_timeout=60).run()
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "Models: `models` · runs: `/somewhere/else/runs`" in captions, captions


def test_home_names_the_model_predict_uses(monkeypatch):
    """Home listed 40 shipped models without saying which one Predict starts from; the
    default (models/default.json) is now named with its reason and starred in the table."""
    from ser.ensemble import default_models

    monkeypatch.setenv("SER_MODELS_DIR", str(REPO / "models"))
    names, why = default_models()
    at = AppTest.from_file(str(REPO / "Home.py"), default_timeout=120).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "What Predict uses by default" in text and why[:60] in text
    models = [v for t in at.table for v in t.value["model"]]
    assert [m for m in models if m.startswith("★ ")] == [f"★ {n}" for n in names]
