"""Issue #14 item 2: a damaged feature cache is detected and rebuilt; non-finite features
and losses stop a run with a clear message instead of shipping NaN weights."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from conftest import write_clip

from ser.store import FeatureStore


@pytest.fixture()
def clips(tmp_path):
    return [str(write_clip(tmp_path / "clips" / f"c{i}.wav", 0.6, freq=150 + 40 * i))
            for i in range(3)]


def _only_entry(root):
    entries = [d for d in root.iterdir() if (d / "done.json").exists()]
    assert len(entries) == 1
    return entries[0]


def _fresh(tmp_path, clips):
    store = FeatureStore(root=tmp_path / "cache", workers=1)
    first = {k: np.array(v) for k, v in store.features(clips).items()}
    return store, first, _only_entry(tmp_path / "cache")


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))


def test_overwritten_arrays_are_detected_and_rebuilt(tmp_path, clips, caplog):
    store, first, entry = _fresh(tmp_path, clips)
    arr = np.load(entry / "fs1.npy")
    arr[:] = np.nan  # same size, same header: only the content differs
    np.save(entry / "fs1.npy", arr)
    with caplog.at_level(logging.WARNING, logger="ser.store"):
        again = store.features(clips)
    assert "damaged" in caplog.text
    assert np.isfinite(again["fs1"]).all()
    _same(first, again)
    assert json.loads((entry / "done.json").read_text())["files"]["fs1"]["sha256"]


@pytest.mark.parametrize("damage", ["truncate", "delete", "garbage_meta"])
def test_truncated_or_missing_cache_files_are_rebuilt(tmp_path, clips, damage):
    store, first, entry = _fresh(tmp_path, clips)
    f = entry / "fs2.npy"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:1000])
    elif damage == "delete":
        f.unlink()
    else:
        (entry / "done.json").write_text("{not json")
    _same(first, store.features(clips))
    _same(first, store.features(clips))  # and the rebuilt entry is used from then on


def test_a_cache_written_before_checksums_is_checked_by_content(tmp_path, clips):
    store, first, entry = _fresh(tmp_path, clips)
    meta = json.loads((entry / "done.json").read_text())
    del meta["files"]
    (entry / "done.json").write_text(json.dumps(meta))
    _same(first, store.features(clips))  # sound: kept, and given checksums
    assert "files" in json.loads((entry / "done.json").read_text())
    (entry / "done.json").write_text(json.dumps(meta))
    arr = np.load(entry / "fs2.npy")
    arr[0, 0, 0] = np.inf
    np.save(entry / "fs2.npy", arr)
    _same(first, store.features(clips))  # damaged: rebuilt


def test_a_nan_loss_stops_training_with_a_clear_message():
    from ser.models import create_model
    from ser.recipe import TrainConfig
    from ser.training import (
        BatchAugmenter,
        Batches,
        Clock,
        Schedule,
        TrainingError,
        TrainStep,
        run_epoch,
    )

    torch.manual_seed(0)
    model = create_model("lenet1d")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    x, y = torch.randn(8, 1, 169), torch.arange(8) % 6
    batches = Batches((x,), y, 4, torch.device("cpu"), 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = TrainConfig(arch="lenet1d", noise=False)
    with pytest.raises(TrainingError, match="training loss became nan"):
        run_epoch(batches, BatchAugmenter(cfg, ("fs1",), batches.generator, on_gpu=False),
                  TrainStep(model, opt, None, 0.0, 0.0, torch.device("cpu")),
                  Schedule("none", opt, 1e-3, 1, 2), 1, 1, lambda e: None, lambda: False,
                  Clock())


def test_nan_weights_are_never_saved(tmp_path):
    from ser.bundle import BundleError, save_bundle
    from ser.card import Card
    from ser.models import create_model

    model = create_model("lenet1d")
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    card = Card(name="x", arch="lenet1d", input_space="fs1",
                normalisation={"fs1": {"mean": [0.0] * 169, "std": [1.0] * 169}})
    with pytest.raises(BundleError, match="NaN"):
        save_bundle(tmp_path / "x.pt", model, card)
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.slow
def test_a_run_on_a_corrupted_cache_rebuilds_it_and_trains_finite(demo_root, tmp_path,
                                                                  monkeypatch):
    """The reported chain: NaN cache → NaN weights → NaN probabilities labelled 'angry'.
    The cache is this test's own: only what its run wrote is damaged. (Regression: on the
    shared session cache it also met other tests' integer arrays, which cannot hold NaN,
    depending on which test files had run before it.)"""
    from ser.recipe import TrainConfig
    from ser.training import fit

    monkeypatch.setenv("SER_CACHE_DIR", str(tmp_path / "cache"))
    cfg = TrainConfig(arch="lenet1d", epochs=1, noise=False, batch_size=64,
                      data=str(demo_root))
    fit(cfg)
    from ser import config

    root = config.cache_dir() / "features"
    damaged = 0
    for done in root.glob("*/done.json"):
        for f in done.parent.glob("*.npy"):
            arr = np.load(f)
            if arr.dtype.kind == "f":  # the features (integer arrays cannot hold NaN)
                arr[:] = np.nan
                np.save(f, arr)
                damaged += 1
    assert damaged
    result = fit(cfg)
    assert all(torch.isfinite(v).all() for v in result.model.state_dict().values()
               if v.is_floating_point())
    assert np.isfinite(result.report["loss"])


def test_cache_folders_honour_the_umask(tmp_path, clips):
    import os
    import stat

    old = os.umask(0o022)
    try:
        _fresh(tmp_path, clips)
    finally:
        os.umask(old)
    entry = _only_entry(tmp_path / "cache")
    assert stat.S_IMODE(entry.stat().st_mode) == 0o755
