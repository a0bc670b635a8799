"""Issue #14 item 6: a run and its feature workers form one process group; cancel, kill
and cleanup stop all of it, and a run killed from outside leaves no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ser import runs
from ser.recipe import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def extracting(demo_root, tmp_path, monkeypatch, every_core):
    """A launched run caught while its feature workers are busy (a fresh, empty cache, and
    a runs folder of its own, so no other test's run holds the training slot)."""
    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SER_RUNS_DIR", str(tmp_path / "runs"))
    run_id = runs.start(TrainConfig(arch="lenet1d", epochs=1, noise=False,
                                    data=str(demo_root)))
    pgid = None
    t0 = time.time()
    while time.time() - t0 < 120:
        st = runs.status(run_id)
        pgid = st.get("pgid")
        if st["state"] not in runs.ACTIVE:
            pytest.fail(f"run ended early: {st}\n{runs.log_tail(run_id, 30)}")
        if len(runs._group_members(run_id, pgid)) >= 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no workers appeared: {runs.status(run_id)}")
    yield run_id, pgid
    runs.kill(run_id, grace=1)


def _gone(run_id, pgid, timeout=10.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if not runs._group_members(run_id, pgid):
            return True
        time.sleep(0.2)
    return False


def test_the_run_leads_its_own_group(extracting):
    run_id, pgid = extracting
    st = runs.status(run_id)
    assert pgid == st["pid"] and os.getpgid(st["pid"]) == pgid != os.getpgid(0)


def test_kill_during_extraction_stops_every_worker(extracting):
    run_id, pgid = extracting
    st = runs.kill(run_id, grace=3)
    assert st["state"] == "cancelled"
    assert _gone(run_id, pgid)


def test_cancel_during_extraction_takes_the_group(extracting):
    run_id, pgid = extracting
    assert runs.cancel(run_id)["state"] == "cancelled"
    assert _gone(run_id, pgid)


def test_a_run_killed_from_outside_leaves_no_orphans(extracting):
    run_id, pgid = extracting
    os.kill(runs.status(run_id)["pid"], signal.SIGKILL)  # only the leader, as `kill -9`
    time.sleep(0.5)
    st = runs.status(run_id)
    assert st["state"] == "failed"  # noticing the death stops the rest
    assert _gone(run_id, pgid)
    # Regression: the Train page said only "stopped unexpectedly"; a SIGKILL from outside
    # is most often the out-of-memory killer, and the run's status now says so.
    end = time.time() + 10
    while "SIGKILL" not in st.get("error", "") and time.time() < end:
        time.sleep(0.2)
        st = runs.status(run_id)
    assert "killed (SIGKILL)" in st["error"] and "out of memory" in st["error"]
    assert st["exit_code"] == -signal.SIGKILL
    out = subprocess.run([sys.executable, "-m", "ser", "runs", "cleanup"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "stopped leftover processes" in out.stdout


def test_a_stopped_run_names_why_from_its_exit_code():
    assert "out of memory" in runs.death_reason(-signal.SIGKILL)
    assert "SIGSEGV" in runs.death_reason(-signal.SIGSEGV)
    assert "code 3" in runs.death_reason(3)


def test_sigterm_while_preparing_data_ends_the_run_before_training(extracting):
    """Regression: `kill <pid>` (SIGTERM, what a shell or a scheduler sends) only marked the
    run for cancelling, and the mark was read by the training loop alone: a run preparing
    its data (extraction, then teacher scoring of the pool: half an hour) went on to the
    end before it stopped."""
    run_id, pgid = extracting
    os.kill(runs.status(run_id)["pid"], signal.SIGTERM)
    end = time.time() + 60
    while runs.status(run_id)["state"] in runs.ACTIVE and time.time() < end:
        time.sleep(0.2)
    st = runs.status(run_id)
    log = runs.log_tail(run_id, 40)
    assert st["state"] == "cancelled", log
    assert "nothing was trained" in log and "epoch 1/" not in log, log
    assert "building the model" not in log, log
    assert _gone(run_id, pgid)
