"""The command line, as a user runs it (real subprocesses, demo corpus)."""

import subprocess
import sys

import pytest


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ser", *args], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.slow
def test_corpus_info_on_demo_says_synthetic(demo_root):
    out = run("corpus", "info")
    assert out.returncode == 0, out.stderr
    assert "SYNTHETIC" in out.stdout and "per emotion" in out.stdout
    assert "synthetic" in out.stderr.lower()
    assert "digital silence: 0" in out.stdout


@pytest.mark.slow
def test_split_reports_leakage_of_the_random_protocol(demo_root):
    out = run("split", "--protocol", "random")
    assert out.returncode == 0, out.stderr
    assert "LEAKAGE" in out.stdout
    out = run("split", "--protocol", "speaker")
    assert "verdict: no leakage" in out.stdout


@pytest.mark.slow
def test_models_table_lists_every_architecture():
    from ser.models import list_models

    out = run("models")
    assert out.returncode == 0, out.stderr
    for name in list_models():
        assert name in out.stdout
    one = run("models", "ser2d")
    assert one.returncode == 0 and "parameters" in one.stdout


@pytest.mark.slow
def test_bad_inputs_are_errors_not_tracebacks(tmp_path):
    out = run("corpus", "info", str(tmp_path / "missing"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"nope")
    clip = tmp_path / "c.wav"
    clip.write_bytes(b"nope")
    out = run("predict", str(bad), str(clip))
    assert out.returncode == 2 and "not a SER Studio model" in out.stderr
    assert "Traceback" not in out.stderr
