"""Issue #14 items 1, 3, 4, 12: an uploaded bundle is validated before anything is built,
its card is covered by a checksum, bad cards are clear `BundleError`s."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from predict_helpers import make_bundle

from ser.bundle import BundleError, card_path, load_bundle, read_card, sign_card

ROOT = Path(__file__).resolve().parent.parent


def _raw(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def forge(src: Path, dest: Path, *, sign: bool = True, drop: tuple[str, ...] = (),
          **changes) -> Path:
    """A copy of bundle ``src`` whose card has ``changes`` (dotted keys reach into nested
    dicts); re-signed as an attacker who knows the checksum rule would (``sign``)."""
    obj = _raw(src)
    card = json.loads(obj["card"])
    for key, value in changes.items():
        *parents, leaf = key.split("__")
        d = card
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = value
    for key in drop:
        *parents, leaf = key.split("__")
        d = card
        for p in parents:
            d = d[p]
        d.pop(leaf, None)
    obj["card"] = json.dumps(sign_card(card) if sign else card)
    buf = io.BytesIO()
    torch.save(obj, buf)
    dest.write_bytes(buf.getvalue())
    return dest


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("b") / "tiny" / "model.pt", arch="lenet2d")


def test_a_good_bundle_loads(good):
    assert load_bundle(good).card.arch == "lenet2d"


# ------------------------------------------------------------------ item 1: memory bomb

def test_a_huge_width_in_the_card_is_refused_cheaply(good, tmp_path):
    """186 kB of weights whose card says width 128 made the server allocate 5.6 GB."""
    bomb = forge(good, tmp_path / "bomb.pt", model_kwargs={"width": 128})
    code = ("import sys, time\n"
            "from ser.bundle import load_bundle, BundleError\n"
            "t = time.time()\n"
            "try:\n    load_bundle(sys.argv[1])\nexcept BundleError as e:\n    print(e)\n"
            "print(round(time.time() - t, 2))\n"
            # VmHWM belongs to this process's own memory map; ru_maxrss would carry
            # over the peak of the (large) pytest process that spawned it
            "print(next(int(line.split()[1]) for line in open('/proc/self/status')\n"
            "           if line.startswith('VmHWM')))\n")
    out = subprocess.run([sys.executable, "-c", code, str(bomb)], cwd=ROOT, text=True,
                         capture_output=True, timeout=120)
    message, seconds, rss_kb = out.stdout.strip().splitlines()[-3:]
    assert "width" in message and "[0.05, 4.0]" in message, message
    assert float(seconds) < 5
    assert int(rss_kb) < 1_500_000, f"peak RSS {int(rss_kb) / 1e6:.1f} GB"


@pytest.mark.parametrize(("changes", "needle"), [
    ({"arch": "resnet9000"}, "does not have"),
    ({"model_kwargs": {"dropout": 3}}, "dropout"),
    ({"model_kwargs": {"width": "wide"}}, "width"),
    ({"model_kwargs": {"n_classes": 7}}, "outputs"),
    ({"model_kwargs": {"n_mels": 100000}}, "n_mels"),
    ({"model_kwargs": {"bogus": 1}}, "bogus"),
    ({"model_kwargs": [1, 2]}, "mapping"),
    ({"params": 123}, "claims 123 parameters"),
])
def test_impossible_cards_are_refused_before_building(good, tmp_path, changes, needle):
    bad = forge(good, tmp_path / "bad.pt", **changes)
    with pytest.raises(BundleError, match=needle):
        load_bundle(bad)


def test_a_wrong_architecture_gives_a_short_message(good, tmp_path):
    """Item 12: the error named every mismatched tensor (the whole shape table)."""
    bad = forge(good, tmp_path / "arch.pt", arch="vgg2d")
    with pytest.raises(BundleError) as err:
        load_bundle(bad)
    msg = str(err.value)
    assert "do not fit architecture 'vgg2d'" in msg
    assert len(msg) < 400 and "\n" not in msg, msg


# ------------------------------------------------------------------ item 3: card checksum

def test_an_edited_card_is_refused(good, tmp_path):
    bad = forge(good, tmp_path / "edited.pt", sign=False,
                metrics__test={"n": 10, "accuracy": 0.999, "uar": 0.999})
    with pytest.raises(BundleError, match="model card does not match"):
        load_bundle(bad)
    other_norm = forge(good, tmp_path / "norm.pt", sign=False, feature_config__top_db=20.0)
    with pytest.raises(BundleError, match="model card does not match"):
        load_bundle(other_norm)


def test_a_card_without_its_checksum_is_refused(good, tmp_path):
    bad = forge(good, tmp_path / "old.pt", sign=False, drop=("card_sha256",),
                format_version=1)
    with pytest.raises(BundleError, match="no checksum over its model card"):
        load_bundle(bad)


def test_an_edited_card_copy_is_not_shown(good, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(good.parent, folder)
    side = card_path(folder / "model.pt")
    card = json.loads(side.read_text())
    card["metrics"]["test"] = {"n": 10, "accuracy": 0.999, "uar": 0.999, "macro_f1": 0.99}
    side.write_text(json.dumps(card))
    assert read_card(folder / "model.pt").test is None  # the bundle's own card: no claim


def test_every_shipped_model_loads_with_its_checksum():
    t = time.time()
    paths = sorted((ROOT / "models").glob("*/model.pt"))
    assert len(paths) >= 31
    for p in paths:
        b = load_bundle(p)
        assert b.card.extra["card_sha256"], p
        assert read_card(p).name == b.card.name
    assert time.time() - t < 120


# ------------------------------------------------------------------ item 4: bad cards

@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"drop": ("normalisation",)}, "no normalisation statistics for fs2"),
    ({"normalisation": {"fs2": {"mean": [0.0] * 3, "std": [1.0] * 3}}}, "128 values"),
    ({"normalisation": {"fs2": {"mean": [0.0] * 128, "std": [0.0] * 128}}}, "non-positive"),
    ({"input_space": "fs9"}, "input space"),
    ({"drop": ("input_space",)}, "input space"),
    ({"feature_config__hop_length": 0}, "hop_length"),
    ({"feature_config__sample_rate": 0}, "sample_rate"),
    ({"feature_config__n_fft": "big"}, "n_fft"),
    ({"feature_config__fs2_norm": "weird"}, "fs2_norm"),
    ({"calibration": {"temperature": "hot"}}, None),
])
def test_bad_card_fields_are_bundle_errors(good, tmp_path, kwargs, needle):
    from ser.inference import Predictor

    bad = forge(good, tmp_path / "bad.pt", **kwargs)
    with pytest.raises(BundleError, match=needle):
        Predictor(bad)


@pytest.mark.slow
def test_bad_card_on_the_cli_is_one_line_not_a_traceback(good, tmp_path):
    from conftest import write_clip

    bad = forge(good, tmp_path / "bad.pt", feature_config__sample_rate=0)
    clip = write_clip(tmp_path / "c.wav", 1.5)
    out = subprocess.run([sys.executable, "-m", "ser", "predict", str(bad), str(clip)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in out.stderr + out.stdout
    assert "sample_rate" in out.stderr + out.stdout
    assert out.returncode != 0


# ------------------------------------------------------------------ item 12: pickles

class _Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_malicious_pickle_is_called_what_it_is(tmp_path):
    buf = io.BytesIO()
    torch.save({"format": "ser-studio-bundle", "x": _Boom()}, buf)
    p = tmp_path / "evil.pt"
    p.write_bytes(buf.getvalue())
    with pytest.raises(BundleError) as err:
        load_bundle(p)
    msg = str(err.value)
    assert "not a SER Studio model bundle" in msg and "without running" in msg
    assert "truncated" not in msg
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(BundleError, match="without running"):
        load_bundle(raw)

