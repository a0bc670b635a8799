"""The model list is cached per folder by file stamps (pages list every model on each
rerun): a changed report, a replaced bundle or a new training log must show at once, and
the training log is read only when asked for."""

from __future__ import annotations

import json
import os

from predict_helpers import make_bundle


def _bump(path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def test_model_list_follows_changed_files(models_dir):
    from ser.zoo import shipped_models as all_models  # the runs of other tests aside

    folder = models_dir / "tiny.a"
    make_bundle(folder / "model.pt", name="tiny.a")
    (folder / "report.json").write_text(json.dumps({"accuracy": 0.4}))
    first = {e.name: e for e in all_models()}["tiny.a"]
    assert first.report["accuracy"] == 0.4 and first.curves == []

    (folder / "report.json").write_text(json.dumps({"accuracy": 0.55}))
    _bump(folder / "report.json")
    (folder / "metrics.jsonl").write_text(json.dumps({"type": "epoch", "epoch": 1}) + "\n")
    again = {e.name: e for e in all_models()}["tiny.a"]
    assert again.report["accuracy"] == 0.55
    assert again.curves == [{"type": "epoch", "epoch": 1}]

    again.report["accuracy"] = 0.99  # a caller's edit must not leak into the cache
    assert {e.name: e for e in all_models()}["tiny.a"].report["accuracy"] == 0.55

    make_bundle(folder / "model.pt", name="tiny.renamed", seed=3)
    _bump(folder / "model.pt")
    assert [e.name for e in all_models()] == ["tiny.renamed"]


def test_a_removed_model_leaves_the_list(models_dir):
    import shutil

    from ser.zoo import shipped_models as all_models  # the runs of other tests aside

    make_bundle(models_dir / "tiny.b" / "model.pt", name="tiny.b")
    assert [e.name for e in all_models()] == ["tiny.b"]
    shutil.rmtree(models_dir / "tiny.b")
    assert all_models() == []
