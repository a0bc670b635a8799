"""Benchmark scripts run as a user runs them (real subprocesses, real shipped models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pooled(tess_pool, tmp_path_factory) -> tuple[dict, Path]:
    """A ser2d (BatchNorm) trained for one epoch on the demo corpus pooled with TESS-named
    clips and shipped as ``ser2d.pool``: ``(environment, models folder)``."""
    root = tmp_path_factory.mktemp("bench")
    models = root / "models"
    env = {**os.environ, "SER_MODELS_DIR": str(models), "SER_RUNS_DIR": str(root / "runs")}
    train = subprocess.run(
        [sys.executable, "-m", "ser", "train", "--arch", "ser2d", "--data", tess_pool,
         "--epochs", "1", "--no-noise", "--seed", "3", "--ship", "ser2d.pool"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    return env, models


def test_default_model_benchmark_reports_each_corpus_of_a_pooled_default(tess_pool, pooled):
    # Regression: with a pooled (general) default the benchmark printed the pooled
    # validation and test figures as "CREMA-D", and with --corpus scored every clip of a
    # corpus the model trained on as if it had never heard it.
    env, models = pooled
    (models / "default.json").write_text(json.dumps(
        {"models": ["ser2d.pool"], "why": "the pooled test model"}))
    tess = tess_pool.split("tess=", 1)[1]
    out = subprocess.run(
        [sys.executable, "benchmarks/default_model.py", "--corpus", f"tess={tess}",
         "--repeats", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    rows = [line.split() for line in lines if line.startswith("  ser2d.pool ")]
    # TESS's two speakers all train (too few to hold any out), so each part holds the demo
    # corpus's held-out speakers alone: one row per part, named by its corpus.
    assert [r[1] for r in rows] == ["demo", "demo"], out.stdout
    assert "CREMA-D validation" not in out.stdout
    assert any("tess: skipped" in line for line in lines), out.stdout
    assert "corpora none of them heard" not in out.stdout
    assert "latency" in out.stdout and "calibrated to a voice (" in out.stdout


def test_default_model_benchmark_scores_members_of_different_splits_on_shared_clips(
        demo_root, pooled):
    # Regression: a default pairing a pooled model with a one-corpus model (their test
    # parts differ: the pool's clips are named "demo/…", the other's "…") stopped the
    # benchmark with an IndexError.
    env, models = pooled
    train = subprocess.run(
        [sys.executable, "-m", "ser", "train", "--arch", "ser2d", "--data", str(demo_root),
         "--epochs", "1", "--no-noise", "--seed", "3", "--ship", "ser2d.demo-only"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    (models / "default.json").write_text(json.dumps(
        {"models": ["ser2d.pool", "ser2d.demo-only"], "why": "a pair of two splits"}))
    try:
        out = subprocess.run(
            [sys.executable, "benchmarks/default_model.py", "--repeats", "2"], cwd=ROOT,
            env=env, capture_output=True, text=True, timeout=600)
    finally:
        (models / "default.json").unlink()
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines()
            if line.startswith(("  ser2d.", "  average of 2"))]
    for part in (rows[:3], rows[3:]):  # validation, then test: every row on one clip set
        assert [r[0] for r in part] == ["ser2d.pool", "ser2d.demo-only", "average"], rows
        assert len({r[-1] for r in part}) == 1 and part[0][-1] != "(n=0)", rows


def test_enrolment_benchmark_adapts_by_batchnorm_statistics(demo_root, tess_pool, pooled,
                                                             tmp_path):
    """`--adapt both`: BatchNorm statistics moved towards each speaker's enrolment clips,
    then the offset; the figures are written and every enrolment clip stays unscored."""
    env, _ = pooled
    out_json = tmp_path / "enrol.json"
    tess = tess_pool.split("tess=", 1)[1]
    out = subprocess.run(
        [sys.executable, "benchmarks/enrolment.py", "ser2d.pool", "--corpus",
         f"demo={demo_root}", "--corpus", f"tess={tess}", "--ks", "1,2", "--draws", "1",
         "--adapt", "both", "--bn-weight", "0.5", "--json", str(out_json)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "adapted by BatchNorm statistics (weight 0.5) and the offset" in out.stdout
    # Regression: a pooled corpus with no held-out speaker (TESS trains whole) was scored
    # on the other corpora's test clips under its name.
    assert "tess: skipped" in out.stdout
    assert set(json.loads(out_json.read_text())["ser2d.pool"]) == {"demo"}
    res = json.loads(out_json.read_text())["ser2d.pool"]["demo"]
    assert res["kind"] == "held-out"
    # the same scored clips for every k (enrolment candidates drawn once per speaker)
    assert res["0"][0]["n"] == res["1"][0]["n"] == res["2"][0]["n"] > 0
    assert all(0.0 <= res[k][0]["uar"] <= 1.0 for k in ("0", "1", "2"))
    bad = subprocess.run(
        [sys.executable, "benchmarks/enrolment.py", "ser2d.pool", "--corpus",
         f"demo={demo_root}", "--adapt", "both", "--bn-weight", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--bn-weight must lie in 0–1" in bad.stderr


def test_enrolment_benchmark_scores_a_speaker_normalised_voice_model(demo_root, pooled,
                                                                     tmp_path):
    # Regression: a speaker-normalised voice model stopped the benchmark twice: its
    # statistics were taken from log-mel images instead of voice vectors, and with
    # ``--ks 0,…`` it was asked to answer without any enrolment clip.
    env, _ = pooled
    train = subprocess.run(
        [sys.executable, "-m", "ser", "train", "--arch", "voicelin", "--data", str(demo_root),
         "--epochs", "1", "--no-noise", "--speaker-norm", "speaker", "--enrol", "2",
         "--ship", "voicelin.spk"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    out_json = tmp_path / "enrol.json"
    out = subprocess.run(
        [sys.executable, "benchmarks/enrolment.py", "voicelin.spk", "--corpus",
         f"demo={demo_root}", "--ks", "0,2", "--draws", "1", "--json", str(out_json)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "speaker-normalised" in out.stdout
    res = json.loads(out_json.read_text())["voicelin.spk"]["demo"]
    assert "0" not in res and 0.0 <= res["2"][0]["uar"] <= 1.0 and res["2"][0]["n"] > 0
    # The same draw with the voice offset on top of the normalisation: same clips scored.
    offset = subprocess.run(
        [sys.executable, "benchmarks/enrolment.py", "voicelin.spk", "--corpus",
         f"demo={demo_root}", "--ks", "2", "--draws", "1", "--offset-normalised", "--json",
         str(out_json)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert offset.returncode == 0, offset.stderr[-2000:]
    assert "speaker-normalised + the offset" in offset.stdout
    shifted = json.loads(out_json.read_text())["voicelin.spk"]["demo"]["2"][0]
    assert shifted["n"] == res["2"][0]["n"] and 0.0 <= shifted["uar"] <= 1.0
    # ...and with the enrolment clips' emotions (labelled takes): the read-out is refitted,
    # the same clips are scored, and a validation part can be asked for.
    def bench(*extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "benchmarks/enrolment.py", "voicelin.spk",
                               "--corpus", f"demo={demo_root}", *extra], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)

    labelled = bench("--ks", "2", "--draws", "1", "--labelled", "100", "--json", str(out_json))
    assert labelled.returncode == 0, labelled.stderr[-2000:]
    assert "refitted to the labelled takes (strength 100)" in labelled.stdout
    fitted = json.loads(out_json.read_text())["voicelin.spk"]["demo"]["2"][0]
    assert fitted["n"] == res["2"][0]["n"] and 0.0 <= fitted["uar"] <= 1.0
    val = bench("--ks", "2", "--draws", "1", "--part", "val")
    assert val.returncode == 0, val.stderr[-2000:]
    assert any(line.split()[:2] == ["demo", "validation"] for line in val.stdout.splitlines())
    guided = bench("--ks", "6", "--draws", "1", "--guided", "--labelled", "100")
    assert guided.returncode == 0, guided.stderr[-2000:]
    assert "k=6 guided" in guided.stdout and "(guided, each one emotion in turn)" in guided.stdout
    bad = bench("--guided", "--balanced", timeout=120)
    assert bad.returncode == 2 and "not allowed with" in bad.stderr
    bad = bench("--labelled", "0", timeout=120)
    assert bad.returncode == 2 and "--labelled must be positive" in bad.stderr
    bad = bench("--refit-all", timeout=120)
    assert bad.returncode == 2 and "--refit-all needs --labelled" in bad.stderr


def test_guided_enrolment_draws_the_takes_the_page_asks_for():
    """``--guided``: the k takes of the Predict page's guide (one per emotion in turn), so
    10 takes are two each of angry, disgust, fear and happy and one neutral and one sad;
    every candidate of a speaker stays unscored, whatever k is shown."""
    import importlib.util

    import numpy as np
    import pandas as pd

    from ser.speakers import GUIDE_ORDER, guided_emotions

    spec = importlib.util.spec_from_file_location("enrolment", ROOT / "benchmarks" /
                                                  "enrolment.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    clips = pd.DataFrame([{"speaker": s, "emotion": e, "path": f"{s}-{e}-{i}.wav"}
                          for s in ("a", "b") for e in GUIDE_ORDER for i in range(5)])
    emo = clips["emotion"].to_numpy()
    cand, scored = bench.candidates(clips, 10, 0, "guided")
    assert sorted(cand) == ["a", "b"]
    for rows in cand.values():
        assert len(rows) == 12 and all((emo[rows] == e).sum() == 2 for e in GUIDE_ORDER)
        takes = bench.first(rows, emo, 10, "guided")
        counts = pd.Series(emo[takes]).value_counts().to_dict()
        assert counts == pd.Series(guided_emotions(10)).value_counts().to_dict() == {
            "angry": 2, "disgust": 2, "fear": 2, "happy": 2, "neutral": 1, "sad": 1}
        assert len(bench.first(rows, emo, 3, "guided")) == 3
    assert len(scored) == len(clips) - 24
    assert not set(scored) & set(np.concatenate(list(cand.values())))


def test_enrolment_benchmark_without_enrolment_scores_every_clip():
    """Regression: ``--ks 0`` alone (the models as they are, no voice) crashed while
    drawing enrolment clips ("enrolment needs at least one clip per speaker, not 0")."""
    import importlib.util

    import numpy as np
    import pandas as pd

    spec = importlib.util.spec_from_file_location("enrolment", ROOT / "benchmarks" /
                                                  "enrolment.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    clips = pd.DataFrame([{"speaker": s, "emotion": e, "path": f"{s}-{e}-{i}.wav"}
                          for s in ("a", "b") for e in ("angry", "sad") for i in range(3)])
    for draw in ("random", "balanced", "guided"):
        cand, scored = bench.candidates(clips, 0, 0, draw)
        assert cand == {} and np.array_equal(scored, np.arange(len(clips)))


@pytest.mark.parametrize("script, good, cells, bad, refusal", [
    # a log-mel floor at prediction time: as is, 30, 50 dB, the mean of all
    ("floor_at_test.py", ["--floors", "30,50"], 4, ["--floors", "5"], "between 10 and 79"),
    # each clip's own BatchNorm statistics: as is, W = 0.25, W = 1
    ("clip_batchnorm.py", ["--weights", "0.25,1"], 3, ["--weights", "0"], "lie in (0, 1]"),
    # every clip shifted in pitch: as recorded, -3 and +3 semitones (a list that starts
    # with a minus sign is written with "=", or argparse takes it for an option)
    ("pitch_at_test.py", ["--shifts=-3,3"], 3, ["--shifts", "13"], "within ±12 semitones"),
])
def test_rescoring_benchmarks_print_a_cell_per_variant(demo_root, pooled, script, good, cells,
                                                       bad, refusal):
    """The benchmarks that score a model again under variants of prediction
    (`benchmarks/rescore.py`): one UAR (most-predicted share) per variant on the corpus's
    held-out speakers, and a setting out of range refused with exit code 2."""
    env, _ = pooled

    def run(*args: str, timeout: int):
        return subprocess.run([sys.executable, f"benchmarks/{script}", "ser2d.pool",
                               "--corpus", f"demo={demo_root}", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)

    out = run(*good, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    row = next(line for line in out.stdout.splitlines() if line.startswith("demo "))
    assert row.split()[1] == "held-out" and row.count("%") == 2 * cells
    if script == "pitch_at_test.py":  # then each speaker of the corpus on a row of its own
        assert any(line.startswith("  speaker ") and line.count("%") == 2 * cells
                   for line in out.stdout.splitlines()), out.stdout
    refused = run(*bad, timeout=120)
    assert refused.returncode == 2 and refusal in refused.stderr
    # Regression: a missing corpus folder ended in a CorpusError traceback
    missing = run("--corpus", f"gone={demo_root / 'gone'}", timeout=120)
    assert missing.returncode == 2 and "--corpus gone: no folder" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.slow
def test_voice_probe_prints_every_part_and_chooses_c_without_the_left_out_corpus(demo_root,
                                                                                 tess_pool):
    """benchmarks/voice_probe.py on the demo corpus and three TESS-named corpora: a row per
    part of the voice vector, each corpus left out (plain and speaker-centred), then
    --nested: a row per C for each left-out corpus (the other corpora left out in turn),
    and the left-out corpus at the chosen C and at --C; --nap: the same nested choice of
    how many directions of the speakers' means are projected out, and a row per K."""
    tess = tess_pool.split("tess=", 1)[1]
    out = subprocess.run(
        [sys.executable, "benchmarks/voice_probe.py", "--data",
         f"demo={demo_root},tess={tess},tess2={tess},tess3={tess}", "--enrol", "3",
         "--nested", "0.001,0.01", "--draws", "1", "--max-iter", "60", "--nap", "0,2"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    out.stdout, nap = out.stdout.split("Speaker directions projected out", 1)
    head, text = out.stdout.split("Nested choice of C", 1)
    for row in ("all 1,792", "speaker embedding", "layer 1", "layer 2", "layer 3",
                "tess ", "tess, speaker-centred", "demo test actors, speaker-centred"):
        assert f"  {row}" in head, (row, head)
    assert "UAR" in head and "nan" not in head
    assert "--max-iter 60: probes may stop before they converge" in head
    assert "ConvergenceWarning" not in out.stderr
    for held in ("tess", "tess2", "tess3"):
        assert f"  {held} left out, C = 0.01: nested UAR" in text, text
        assert f"  {held} left out, C = 0.001: nested UAR" in text, text
        assert f"  {held} at C = 0.003 (--C): UAR" in text, text
        assert text.count(f"  {held} at C = ") == 2 and "(chosen)" in text, text
        for k in (0, 2):
            assert f"  {held} left out, K = {k}: nested UAR" in nap, nap
            assert f"  {held} at K = {k}" in nap, nap
    assert nap.count("(chosen)") == 3
    assert "nan" not in text and "nan" not in nap


def test_voice_probe_nap_on_a_small_pool_says_what_it_cannot_do(capsys):
    """Regression: with fewer than three other corpora in the pool, --nap's nested choice
    chose K from probes trained on a single corpus (on none with a pool of two, which
    crashed), where --nested says it cannot choose; both now share that guard. Three
    corpora of random vectors, two speakers each, six emotions."""
    import importlib.util
    from types import SimpleNamespace

    import numpy as np

    spec = importlib.util.spec_from_file_location("voice_probe", ROOT / "benchmarks" /
                                                  "voice_probe.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    data = {}
    for key in ("a", "b", "c"):
        y = np.tile(np.arange(6), 8)
        spk = np.repeat([f"{key}:1", f"{key}:2"], 24)
        data[key] = (rng.standard_normal((48, 12)) + y[:, None] * 0.5, y, spk, None)
    assert bench.spread_pool(data) == ["a", "b", "c"]
    bench.nap_choice(data, [0, 2], SimpleNamespace(C=0.01, max_iter=50))
    out = capsys.readouterr().out
    for held in ("b", "c"):
        assert f"  {held}: needs at least three other corpora to leave one out inside" in out
    assert "UAR" not in out


def test_chain_copy_keeps_the_corpus_readable_with_one_chain_per_speaker(tess_pool, tmp_path):
    import numpy as np
    import soundfile as sf

    from ser.corpora import load_corpus

    src = Path(tess_pool.split("tess=", 1)[1])
    (src / "README.md").write_text("labels: folder names\n")
    dest = tmp_path / "chained"
    out = subprocess.run([sys.executable, "benchmarks/chain_copy.py", str(src), str(dest),
                          "--seed", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "36 clips written" in out.stdout
    assert (dest / "README.md").read_text() == "labels: folder names\n"
    before, after = load_corpus(src).manifest, load_corpus(dest).manifest
    assert len(after) == len(before) == 36
    assert sorted(after["speaker"]) == sorted(before["speaker"])
    assert sorted(after["emotion"]) == sorted(before["emotion"])
    a, sr = sf.read(dest / "OAF_angry" / "OAF_back_angry.wav")
    assert sr == 16000 and len(a) == int(0.8 * 16000) and np.abs(a).max() > 0.1
    # Seeded: the same seed writes the same audio, another seed another chain.
    for seed, same in (("1", True), ("2", False)):
        again = tmp_path / f"again{seed}"
        subprocess.run([sys.executable, "benchmarks/chain_copy.py", str(src), str(again),
                        "--seed", seed], cwd=ROOT, check=True, capture_output=True, timeout=600)
        b, _ = sf.read(again / "OAF_angry" / "OAF_back_angry.wav")
        assert np.array_equal(a, b) == same
    refused = subprocess.run([sys.executable, "benchmarks/chain_copy.py", str(src),
                              str(src / "inside")], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert refused.returncode != 0 and "outside" in refused.stderr


def test_models_benchmark_measures_bfloat16_training_beside_float32():
    out = subprocess.run(
        [sys.executable, "benchmarks/models.py", "--models", "lenet1d", "--bf16", "--windows",
         "1", "--seconds", "0.05", "--steps", "1", "--warmup", "1", "--repeats", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stderr[-2000:]  # 1: below budget on a busy machine
    assert "bfloat16 instructions: " in out.stdout and "bf16/s" in out.stdout
    row = next(line for line in out.stdout.splitlines() if line.startswith("lenet1d "))
    assert row.rstrip().endswith("×"), row
    assert "Traceback" not in out.stderr
