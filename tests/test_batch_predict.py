"""``python -m ser predict MODELS FOLDER --csv out.csv``: real bundles, real files, a real
process pool."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import write_clip
from predict_helpers import make_bundle

from ser import config
from ser.cli import main
from ser.inference import Predictor, ensemble


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    for i in range(10):
        sub = d / ("a" if i % 2 else "b")
        write_clip(sub / f"clip{i}.wav", seconds=0.6 + 0.5 * i, freq=120 + 25 * i)
    (d / "b" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really")
    (d / "notes.txt").write_text("not audio")
    return d


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    make_bundle(d / "m1" / "model.pt", arch="lenet2d", seed=1)
    make_bundle(d / "m2" / "model.pt", arch="lenet1d", seed=2)
    return d


@pytest.mark.slow
def test_batch_prediction_of_a_folder_writes_one_row_per_clip(folder, models, tmp_path,
                                                              capsys):
    out = tmp_path / "out.csv"
    code = main(["predict", str(models), str(folder), "--csv", str(out), "--workers", "2"])
    assert code == 2  # the broken file is reported, the others are scored
    table = pd.read_csv(out, keep_default_na=False)
    clips = sorted(str(p) for p in folder.rglob("*") if p.suffix == ".wav")
    assert list(table["clip"]) == clips  # every audio file, in order, and nothing else
    broken = table[table["clip"].str.endswith("broken.wav")].iloc[0]
    assert broken["error"] and broken["label"] == ""
    good = table[table["error"] == ""]
    assert len(good) == 10 and set(good["models"].astype(int)) == {2}
    probs = good[[f"p_{lab}" for lab in config.LABELS]].to_numpy(dtype=float)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    # the same numbers as the single-clip path
    predictors = [Predictor(p) for p in sorted(models.glob("*/model.pt"))]
    row = good.iloc[3]
    want = ensemble([p.calibrated(p.predict(row["clip"])) for p in predictors])
    np.testing.assert_allclose(probs[3], want, atol=1e-6)
    assert row["label"] == config.LABELS[int(np.argmax(want))]
    assert "1 could not be scored" in capsys.readouterr().err


@pytest.mark.slow
def test_batch_prediction_clean_folder_and_bad_input(folder, models, tmp_path):
    out = tmp_path / "a.csv"
    assert main(["predict", str(models / "m1"), str(folder / "a"), "--csv", str(out)]) == 0
    assert len(pd.read_csv(out)) == 5
    assert main(["predict", "no-such-model", str(folder), "--csv", str(out)]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(models / "m1"), str(empty), "--csv", str(out)]) == 2


@pytest.mark.slow
def test_onnx_engine_gives_the_same_rows(folder, models, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    a, b = tmp_path / "torch.csv", tmp_path / "onnx.csv"
    assert main(["predict", str(models), str(folder / "a"), "--csv", str(a)]) == 0
    assert main(["predict", str(models), str(folder / "a"), "--csv", str(b),
                 "--engine", "onnx"]) == 0
    ta, tb = pd.read_csv(a), pd.read_csv(b)
    cols = [f"p_{lab}" for lab in config.LABELS]
    np.testing.assert_allclose(tb[cols].to_numpy(), ta[cols].to_numpy(), atol=1e-4)
    assert list(ta["label"]) == list(tb["label"])
