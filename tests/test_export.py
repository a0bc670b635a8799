"""ONNX export: real bundles, real audio files, real onnxruntime.

Tolerances: probabilities within 1e-4 of PyTorch's (the brief). The torch front end within
0.01 dB of librosa's FS2 at every point and 1e-4 dB on average (measured on these clips:
at most 1.3e-3 dB, mean ~1e-6 dB). Both compute a float32 STFT, in different orders; a
rounding error of ~1e-7 of the peak magnitude is 1e-3 relative (0.004 dB) in a bin 80 dB
below the peak, the floor, and far less in louder bins. 0.01 dB is under 1/1000 of a
typical band's normalisation spread (10-20 dB), so the model cannot tell.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import torch  # noqa: E402

from ser import config  # noqa: E402
from ser.bundle import load_bundle, save_bundle  # noqa: E402
from ser.card import Card  # noqa: E402
from ser.dataset import model_inputs, spaces_for  # noqa: E402
from ser.export import LogMelFrontEnd, OnnxModel, export_onnx  # noqa: E402
from ser.features import clip_features  # noqa: E402
from ser.inference import Predictor  # noqa: E402
from ser.recipe import TrainConfig  # noqa: E402

SR = config.SAMPLE_RATE
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """20 audio files at 22.05 kHz: voiced tones, noise, chirps, one silence; 0.4–4.9 s."""
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(7)
    out = []
    for i in range(20):
        n = int(SR * (0.4 + 0.235 * i))
        t = np.arange(n) / SR
        if i == 0:
            y = np.zeros(n)
        elif i % 3 == 0:
            y = 0.2 * rng.standard_normal(n)
        elif i % 3 == 1:
            f0 = 110 + 20 * i
            phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 4 * t))) / SR
            y = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.3
            y *= np.clip(np.sin(np.pi * t / t[-1]) * 2, 0, 1)
        else:
            y = 0.4 * np.sin(2 * np.pi * (200 + 800 * t / t[-1]) * t)
            y += 0.01 * rng.standard_normal(n)
        p = d / f"clip{i:02d}.wav"
        sf.write(p, y.astype(np.float32), SR, subtype="FLOAT")
        out.append(p)
    return out


def _features(paths, space):
    feats = [clip_features(sf.read(p, dtype="float32")[0], spaces=(space,))[space]
             for p in paths]
    return np.stack(feats)


def _bundle(path: Path, arch: str, clips) -> Path:
    """A tiny real bundle whose normalisation is fitted on the clips' own features."""
    from ser.dataset import fit_normalisation
    from ser.models import create_model

    torch.manual_seed(0)
    space = "fs2" if arch.endswith("2d") else "fs1"
    kwargs = {"width": 0.25} if space == "fs2" else {}
    model = create_model(arch, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.03 * torch.randn_like(p))
    norm = fit_normalisation({space: _features(clips, space)})
    card = Card(name=path.parent.name, arch=arch, input_space=space, model_kwargs=kwargs,
                normalisation={space: {k: v.tolist() for k, v in norm[space].items()}},
                split={"protocol": "speaker", "counts": {"test": 10}},
                data={"corpus": "test clips", "synthetic": True},
                training=TrainConfig(arch=arch))
    return save_bundle(path, model, card, half=True)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, clips) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    return {arch: _bundle(d / arch / "model.pt", arch, clips)
            for arch in ("lenet2d", "gn2d", "lenet1d")}


@pytest.mark.parametrize("arch", ["lenet2d", "gn2d", "lenet1d"])
def test_onnx_probabilities_equal_pytorch_on_20_clips(arch, bundles, clips, tmp_path):
    bundle = load_bundle(bundles[arch])
    written = export_onnx(bundle, tmp_path / f"{arch}.onnx")
    assert [p.name for p in written] == [f"{arch}.onnx", f"{arch}.json"]
    card = json.loads((tmp_path / f"{arch}.json").read_text())
    assert card["onnx"]["labels"] == list(config.LABELS) and card["arch"] == arch
    session = OnnxModel(tmp_path / f"{arch}.onnx")
    predictor = Predictor(bundles[arch])
    space = spaces_for(bundle.input_space)[0]
    inputs = model_inputs({space: _features(clips, space)}, bundle.input_space,
                          bundle.normalisation)
    got = session(*[x.numpy() for x in inputs])  # all 20 in one batch
    want = np.stack([predictor.predict(p).probs for p in clips])
    assert got.shape == (20, config.N_CLASSES)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert want.std(axis=0).max() > 1e-3  # the clips get different answers: a real check


def test_dynamic_time_axis_where_the_architecture_allows(bundles, tmp_path):
    variable = load_bundle(bundles["gn2d"])
    export_onnx(variable, tmp_path / "gn2d.onnx")
    session = OnnxModel(tmp_path / "gn2d.onnx")
    x = torch.randn(3, 1, config.N_MELS, 90)
    with torch.no_grad():
        want = torch.softmax(variable.model(x), dim=1).numpy()
    np.testing.assert_allclose(session(x.numpy()), want, atol=1e-5)
    card = json.loads((tmp_path / "gn2d.json").read_text())
    assert card["onnx"]["dynamic_axes"]["fs2"] == ["batch", "frames"]
    fixed = load_bundle(bundles["lenet2d"])
    export_onnx(fixed, tmp_path / "lenet2d.onnx")
    card = json.loads((tmp_path / "lenet2d.json").read_text())
    assert card["onnx"]["dynamic_axes"]["fs2"] == ["batch"]


def test_front_end_equals_librosa_features(bundles, clips):
    bundle = load_bundle(bundles["lenet2d"])
    stats = bundle.normalisation["fs2"]
    front = LogMelFrontEnd(bundle.card.features, np.zeros_like(stats["mean"]),
                           np.ones_like(stats["std"])).eval()
    worst, mean = 0.0, []
    for p in clips:
        y = sf.read(p, dtype="float32")[0]
        with torch.no_grad():
            got = front(torch.from_numpy(y)[None]).numpy()[0, 0]
        want = clip_features(y, spaces=("fs2",))["fs2"]
        assert got.shape == want.shape == (config.N_MELS, config.FS2_FRAMES)
        worst = max(worst, float(np.abs(got - want).max()))
        mean.append(float(np.abs(got - want).mean()))
    assert worst < 1e-2, f"front end differs from librosa by up to {worst:.2e} dB"
    assert np.mean(mean) < 1e-4


@pytest.mark.parametrize("arch", ["lenet2d", "gn2d"])
def test_waveform_graph_maps_samples_to_the_predictors_probabilities(arch, bundles, clips,
                                                                      tmp_path):
    from ser.cli import main

    out = tmp_path / f"{arch}.onnx"
    assert main(["export", str(bundles[arch]), "--onnx", "--waveform", "--out",
                 str(out)]) == 0
    wave = tmp_path / f"{arch}.waveform.onnx"
    card = json.loads(wave.with_suffix(".json").read_text())
    assert card["onnx"]["graph"] == "waveform" and card["onnx"]["sample_rate"] == SR
    session = OnnxModel(wave)
    predictor = Predictor(bundles[arch])
    for p in clips:  # each clip is at most one window: the Predictor scores it whole
        y = sf.read(p, dtype="float32")[0]
        np.testing.assert_allclose(session(y[None])[0], predictor.predict(p).probs,
                                   atol=1e-4, rtol=0)


@pytest.mark.slow
def test_clear_messages_without_onnxruntime_and_for_unknown_models(bundles, tmp_path):
    from ser.cli import main

    assert main(["export", "no-such-model", "--onnx"]) == 2
    assert main(["export", str(bundles["lenet1d"]), "--waveform", "--out",
                 str(tmp_path / "x.onnx")]) == 2  # FS1 has no exported front end
    # The app and the library import without onnx/onnxruntime; export says how to get them.
    code = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
            "import ser.export, ser.inference, ser.training, ser.cli\n"
            "from ser.cli import main\n"
            f"sys.exit(main(['export', {str(bundles['lenet2d'])!r}, '--onnx', '--out', "
            f"{str(tmp_path / 'y.onnx')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert "pip install onnxruntime" in r.stderr and "Traceback" not in r.stderr


def test_the_readme_example_runs_with_onnxruntime_alone(bundles, clips, tmp_path):
    text = (ROOT / "README.md").read_text()
    start = text.index("Scoring a clip with onnxruntime alone")
    block = text[text.index("```python\n", start) + len("```python\n"):]
    block = block[:block.index("```")]
    assert len(block.strip().splitlines()) <= 35
    script = tmp_path / "score.py"
    script.write_text(block)
    export_onnx(load_bundle(bundles["gn2d"]), tmp_path / "gn2d.onnx", waveform=True)
    long = tmp_path / "long.wav"  # three clips end to end: ~12 s, several windows
    sf.write(long, np.concatenate([sf.read(p, dtype="float32")[0] for p in clips[15:18]]), SR)
    code = "import sys; sys.modules['torch'] = None; sys.modules['librosa'] = None\n"
    r = subprocess.run([sys.executable, "-c", code + f"exec(open({str(script)!r}).read())",
                        str(tmp_path / "gn2d.waveform.onnx"), str(long)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    printed = {line.split()[0]: float(line.split()[1].rstrip("%")) / 100
               for line in r.stdout.splitlines()}
    want = Predictor(bundles["gn2d"]).predict(long).probs
    assert set(printed) == set(config.LABELS)
    for label, p in zip(config.LABELS, want):
        assert printed[label] == pytest.approx(p, abs=1e-3)  # printed to 0.1 %


def test_front_end_with_a_hop_that_does_not_divide_n_fft(clips, tmp_path):
    """hop 220 (a 10-ms speech front end): frames cannot be cut from hop-long blocks, so the
    graph uses ONNX's STFT operator; still equal to librosa and to the eager module."""
    from ser.export import _to_onnx
    from ser.features import FeatureConfig

    cfg = FeatureConfig(hop_length=220, fs2_frames=503)
    front = LogMelFrontEnd(cfg, np.zeros(cfg.n_mels), np.ones(cfg.n_mels)).eval()
    assert front.dft is None
    path = tmp_path / "front.onnx"
    path.write_bytes(_to_onnx(front, (torch.zeros(1, 22050),), ["waveform"],
                              {"waveform": {0: "batch", 1: "samples"}}, output="probs"))
    session = OnnxModel(path)
    for p in clips[5:9]:
        y = sf.read(p, dtype="float32")[0]
        want = clip_features(y, cfg=cfg, spaces=("fs2",))["fs2"]
        with torch.no_grad():
            eager = front(torch.from_numpy(y)[None]).numpy()[0, 0]
        got = session(y[None])[0, 0]
        assert np.abs(eager - want).max() < 1e-2
        assert np.abs(got - want).max() < 1e-2


def _front_end_pair(fs2_norm: str, tmp_path):
    """``(config, eager front end, its ONNX session)`` for one log-mel normalisation."""
    from ser.export import _to_onnx
    from ser.features import FeatureConfig

    cfg = FeatureConfig(fs2_norm=fs2_norm)
    front = LogMelFrontEnd(cfg, np.zeros(cfg.n_mels), np.ones(cfg.n_mels)).eval()
    path = tmp_path / "front.onnx"
    path.write_bytes(_to_onnx(front, (torch.zeros(1, 22050),), ["waveform"],
                              {"waveform": {0: "batch", 1: "samples"}}, output="probs"))
    return cfg, front, OnnxModel(path)


def test_front_end_removes_the_noise_floor_like_the_features(clips, tmp_path):
    """fs2_norm=denoise in the waveform graph: eager and ONNX equal `clip_features`."""
    cfg, front, session = _front_end_pair("denoise", tmp_path)
    silent = np.zeros(22050, np.float32)
    for y in [sf.read(p, dtype="float32")[0] for p in clips[:6]] + [silent]:
        want = clip_features(y, cfg=cfg, spaces=("fs2",))["fs2"]
        with torch.no_grad():
            eager = front(torch.from_numpy(y)[None]).numpy()[0, 0]
        got = session(y[None])[0, 0]
        for have in (eager, got):
            # cells where what is left of a band is tiny are sensitive to rounding:
            # compare where either side is above -60 dB, and the share of the rest
            loud = (want > -60) | (have > -60)
            assert np.abs(have - want)[loud].max(initial=0) < 0.05
            assert np.mean(np.abs(have - want) < 0.05) > 0.99


def test_front_end_silences_the_bands_above_8_khz_like_the_features(tmp_path):
    """fs2_norm=lowpass in the waveform graph: eager and ONNX equal `clip_features`, on
    full-band clips (hiss up to 11 kHz, one whose loudest bin lies above 8 kHz) and silence."""
    cfg, front, session = _front_end_pair("lowpass", tmp_path)
    rng = np.random.default_rng(1)
    t = np.arange(33075) / 22050
    voiced = (0.3 * np.sin(2 * np.pi * 200 * t) + 0.02 * rng.standard_normal(len(t)))
    whistle = 0.5 * np.sin(2 * np.pi * 9500 * t) + 0.05 * np.sin(2 * np.pi * 300 * t)
    for y in (voiced.astype(np.float32), whistle.astype(np.float32),
              np.zeros(22050, np.float32)):
        want = clip_features(y, cfg=cfg, spaces=("fs2",))["fs2"]
        assert (want[115:] == -80).all()  # the 13 bands above 8 kHz
        with torch.no_grad():
            eager = front(torch.from_numpy(y)[None]).numpy()[0, 0]
        got = session(y[None])[0, 0]
        for have in (eager, got):
            assert np.abs(have - want).max() < 1e-2
