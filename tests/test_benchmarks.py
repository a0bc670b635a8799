"""Benchmark scripts run as a user runs them (real subprocesses, real shipped models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_default_model_benchmark_reports_each_corpus_of_a_pooled_default(tess_pool, tmp_path):
    # Regression: with a pooled (general) default the benchmark printed the pooled
    # validation and test figures as "CREMA-D", and with --corpus scored every clip of a
    # corpus the model trained on as if it had never heard it.
    models = tmp_path / "models"
    env = {**os.environ, "SER_MODELS_DIR": str(models), "SER_RUNS_DIR": str(tmp_path / "runs")}
    train = subprocess.run(
        [sys.executable, "-m", "ser", "train", "--arch", "lenet2d", "--data", tess_pool,
         "--epochs", "1", "--no-noise", "--seed", "3", "--ship", "lenet2d.pool"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    (models / "default.json").write_text(json.dumps(
        {"models": ["lenet2d.pool"], "why": "the pooled test model"}))
    tess = tess_pool.split("tess=", 1)[1]
    out = subprocess.run(
        [sys.executable, "benchmarks/default_model.py", "--corpus", f"tess={tess}",
         "--repeats", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    rows = [line.split() for line in lines if line.startswith("  lenet2d.pool ")]
    # TESS's two speakers all train (too few to hold any out), so each part holds the demo
    # corpus's held-out speakers alone: one row per part, named by its corpus.
    assert [r[1] for r in rows] == ["demo", "demo"], out.stdout
    assert "CREMA-D validation" not in out.stdout
    assert any("tess: skipped" in line for line in lines), out.stdout
    assert "corpora none of them heard" not in out.stdout
    assert "latency" in out.stdout
