"""The Train page's "Processes / GPUs" field starts a real 2-process torchrun run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

HOME = str(Path(__file__).resolve().parent.parent / "Home.py")

# Several ranks that must talk to each other get every core, also under `pytest -n`.
pytestmark = pytest.mark.usefixtures("every_core")


@pytest.mark.slow
def test_train_page_launches_a_two_process_run(demo_root, tmp_path, monkeypatch):
    from ser import runs
    from ser.fileio import read_json

    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path / "models"))
    at = AppTest.from_file(HOME, default_timeout=180)
    at.run()
    at.switch_page("pages/train.py")
    at.run()
    before = {r["run_id"] for r in runs.list_runs()}
    at.multiselect(key="archs").set_value(["gn1d"])
    at.number_input(key="epochs").set_value(1)
    at.checkbox(key="noise").set_value(False)
    at.number_input(key="nproc").set_value(2)
    at.button(key="launch").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    new = [r["run_id"] for r in runs.list_runs() if r["run_id"] not in before]
    assert len(new) == 1
    run_id = new[0]
    assert read_json(runs.run_dir(run_id) / "config.json")["nproc"] == 2
    t0 = time.time()
    while runs.status(run_id)["state"] in runs.ACTIVE:
        assert time.time() - t0 < 300, runs.log_tail(run_id, 30)
        time.sleep(0.5)
    assert runs.status(run_id)["state"] == "finished", runs.log_tail(run_id, 30)
    card = read_json(runs.run_dir(run_id) / "card.json")
    assert card["run"]["processes"] == 2
