"""The voice space: the shipped pretrained encoder, its vectors, and models trained on them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ser.voice import VOICE_DIM, VoiceEncoderError, load_encoder, voice_vector
from tests.conftest import tone, write_clip


def _speechlike(seconds: float = 2.0, sr: int = 16000, f0: float = 140.0) -> np.ndarray:
    """A gliding harmonic tone with syllable-rate loudness: enough structure for an LSTM."""
    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 8))
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


def test_voice_vector_is_the_embedding_then_layer_statistics():
    v = voice_vector(_speechlike(), 16000)
    assert v.shape == (VOICE_DIM,) == (1792,) and v.dtype == np.float32
    assert np.isfinite(v).all()
    # the speaker embedding comes first, unit length and non-negative (after ReLU)
    assert np.linalg.norm(v[:256]) == pytest.approx(1.0, abs=1e-4) and (v[:256] >= 0).all()
    # standard deviations of the LSTM layers are non-negative
    for layer in range(3):
        start = 256 + layer * 512 + 256
        assert (v[start:start + 256] >= 0).all()
    # repeatable, and independent of the loudness (the input is levelled to -30 dBFS)
    np.testing.assert_allclose(voice_vector(_speechlike(), 16000), v, atol=1e-6)
    np.testing.assert_allclose(voice_vector(0.1 * _speechlike(), 16000), v, atol=1e-3)


def test_voice_vector_reads_any_rate_the_same_way():
    import librosa

    y = _speechlike(sr=16000)
    at_44k = librosa.resample(y, orig_sr=16000, target_sr=44100)
    assert np.corrcoef(voice_vector(y, 16000), voice_vector(at_44k, 44100))[0, 1] > 0.99


def test_silent_and_very_short_clips_give_finite_vectors():
    assert np.isfinite(voice_vector(np.zeros(16000, np.float32), 16000)).all()
    assert np.isfinite(voice_vector(tone(0.05, 16000), 16000)).all()


def test_a_wrong_weights_file_is_named(tmp_path):
    with pytest.raises(VoiceEncoderError, match="are missing"):
        load_encoder(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(VoiceEncoderError, match="cannot be read"):
        load_encoder(junk)
    other = tmp_path / "other.pt"
    torch.save({"lstm.weight_ih_l0": torch.zeros(3)}, other)
    with pytest.raises(VoiceEncoderError, match="is not the voice encoder"):
        load_encoder(other)


def test_shipped_weights_are_small_float16_with_their_licence():
    from ser.voice import WEIGHTS

    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    assert {t.dtype for t in state.values()} == {torch.float16}
    assert WEIGHTS.stat().st_size < 4_000_000
    assert "Apache License" in (WEIGHTS.parent / "LICENSE-voice-encoder.txt").read_text()


@pytest.mark.slow
def test_a_voice_model_trains_ships_and_predicts(demo_root, tmp_path):
    """The CLI trains a read-out on the voice space, and the bundle predicts a new clip."""
    import os

    from ser.bundle import load_bundle
    from ser.inference import Predictor

    env = dict(os.environ, SER_MODELS_DIR=str(tmp_path / "models"))
    proc = subprocess.run([sys.executable, "-m", "ser", "train", "--arch", "voicelin",
                           "--data", str(demo_root), "--epochs", "2", "--no-noise",
                           "--ship", "voicelin.demo"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = tmp_path / "models" / "voicelin.demo"
    card = json.loads((folder / "card.json").read_text())
    assert card["arch"] == "voicelin" and card["input_space"] == "voice"
    assert len(card["normalisation"]["voice"]["mean"]) == VOICE_DIM
    bundle = load_bundle(folder / "model.pt")
    clip = write_clip(tmp_path / "new.wav", 1.5, 22050, freq=180)
    out = Predictor(bundle).predict(Path(clip))
    probs = np.asarray(out.probs)
    assert probs.shape == (6,) and probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_predict_page_scores_a_voice_model_beside_a_cnn(models_dir, tmp_path):
    """A voice read-out next to a CNN on the Predict page: both answer, and its 'where it
    listens' view says why there is no map instead of failing."""
    from app_helpers import open_page
    from predict_helpers import make_bundle, place, utterances, wav

    make_bundle(models_dir / "cnn.demo" / "model.pt", name="cnn.demo", seed=1)
    make_bundle(models_dir / "voicelin.demo" / "model.pt", arch="voicelin",
                name="voicelin.demo", seed=2)
    u = utterances(tmp_path / "corpus", n=1)
    y, _ = place([0.5, u[0], 0.5])
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value(("one.wav", wav(y), "audio/wav")).run()
    assert not at.exception, [e.value for e in at.exception]
    at.multiselect[0].set_value(["cnn.demo", "voicelin.demo"]).run()
    assert not at.exception and not at.error, [e.value for e in at.exception or at.error]
    [chart] = [c for c in at.get("plotly_chart") if c.key == "every_model"]
    assert "voicelin.demo" in chart.proto.spec and "cnn.demo" in chart.proto.spec
    at.session_state["listen_open"] = True
    at.run()
    at.multiselect(key="listen_models").set_value(["voicelin.demo"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("no map over time or frequency" in i.value for i in at.info)


def test_architectures_page_describes_the_voice_read_outs(models_dir):
    from app_helpers import open_page

    at = open_page("pages/architectures.py", clean=True)
    table = at.table[0].value
    row = table[table["name"] == "voicelin"].iloc[0]
    assert row["input"].startswith("voice") and row["clip length"].startswith("any")
    assert row["multiply-adds per clip"] == "677 M (encoder)"  # the LSTM on 5 s, not 0.0 M
    at.selectbox[0].set_value("voicelin").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    assert "No convolutional stack" in captions and "frozen voice encoder" in captions
    assert "Receptive field of the convolutional stack: {" not in captions


def test_speaker_statistics_in_the_voice_space_centre_without_dividing():
    from ser.speakers import VectorStats, norm_space, normalise_by_group, stats_by_group

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, VOICE_DIM)).astype(np.float32)
    x[3:] += 5.0  # a second speaker with another mean
    groups = np.array(["a"] * 3 + ["b"] * 3)
    stats = stats_by_group(x, groups, "voice")
    assert isinstance(stats["b"], VectorStats) and stats["b"].clips == 3
    out = normalise_by_group(x, groups, stats)
    np.testing.assert_allclose(out[:3].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out[3:].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out[3:].std(0), x[3:].std(0), rtol=1e-4)  # spread kept
    assert norm_space(("voice",)) == "voice" and norm_space(("fs2",)) == "fs2"
    with pytest.raises(ValueError, match="1792 values"):
        stats["a"].apply(np.zeros((2, 10)))


def test_a_speaker_normalised_voice_model_reads_clips_relative_to_the_voice(tmp_path):
    from predict_helpers import make_bundle, utterances

    from ser.inference import Predictor, VoiceNeededError
    from ser.speakers import VoiceProfile

    path = make_bundle(tmp_path / "v" / "model.pt", arch="voicelin", speaker_norm=True)
    p = Predictor(path)
    assert p.needs_voice and not p.adapts_to_voice
    takes = utterances(tmp_path / "corpus", n=4)
    with pytest.raises(VoiceNeededError, match="speaker-normalised"):
        p.predict_samples(takes[0], 16000)
    voice = VoiceProfile(sample_rate=16000)
    for y in takes[1:]:
        voice.add(y, 16000)
    got = p.predict_samples(takes[0], 16000, voice=voice).probs
    assert got.shape == (6,) and got.sum() == pytest.approx(1.0, abs=1e-4)
    # centring on the voice's mean vector is what the model reads
    mean = voice.stats(p.cfg, "voice").mean
    assert mean.shape == (VOICE_DIM,) and voice.stats(p.cfg, "voice") is voice.stats(p.cfg, "voice")
    arrays, _ = p.window_features(takes[0], 16000)
    np.testing.assert_allclose(p._voice_normalised(arrays, voice)["voice"],
                               arrays["voice"] - mean, atol=1e-5)


def test_the_one_step_read_out_is_the_logistic_regression(demo_root):
    """``readout_l2``: voicelin's layer solved by L-BFGS is scikit-learn's class-weighted
    multinomial logistic regression with C = 1 / readout_l2 on the same training rows, and
    the run records one 'epoch' with no learning rate."""
    from sklearn.linear_model import LogisticRegression

    from ser.distributed import Dist
    from ser.recipe import TrainConfig
    from ser.training import fit, prepared_data

    cfg = TrainConfig(arch="voicelin", data=str(demo_root), readout_l2=5.0,
                      class_weights=True, noise=False, max_clips=150, threads=1).check()
    result = fit(cfg)
    assert result.card.run["epochs_run"] == 1 and result.card.run["epochs_planned"] == 1
    assert result.history[0]["lr"] == 0.0 and result.card.training.as_dict()["readout_l2"] == 5
    layer = result.model.head[-1]
    data = prepared_data(cfg, "voice", Dist(), lambda *a: None, lambda: False)
    x = data.inputs["train"][0].flatten(1).double().numpy()
    y = data.labels["train"].numpy()
    ref = LogisticRegression(C=1 / 5.0, class_weight="balanced", max_iter=5000,
                             tol=1e-10).fit(x, y)
    w = layer.weight.detach().double().numpy()
    assert np.abs(w - ref.coef_).max() < 2e-3 * np.abs(ref.coef_).max()
    p = torch.softmax(torch.from_numpy(x) @ torch.from_numpy(w).T
                      + layer.bias.detach().double(), 1).numpy()
    assert np.abs(p - ref.predict_proba(x)).max() < 2e-3


def test_the_one_step_read_out_refuses_what_it_cannot_honour(demo_root):
    """Options that change the objective are refused by name, and a model that is not one
    linear layer on its input is refused before anything is saved."""
    from ser.recipe import TrainConfig
    from ser.training import TrainingError

    with pytest.raises(ValueError, match="label_smoothing, mixup"):
        TrainConfig(arch="voicelin", readout_l2=1.0, label_smoothing=0.1, mixup=0.2).check()
    with pytest.raises(ValueError, match="readout_l2"):
        TrainConfig(arch="voicelin", readout_l2=-1.0).check()
    assert "readout_l2" not in TrainConfig(arch="voicelin").as_dict()
    with pytest.raises(ValueError, match="voicenet is not one linear layer on its input"):
        TrainConfig(arch="voicenet", readout_l2=1.0).check()
    # the fit itself checks the network too, whatever its class says
    from ser.distributed import Dist
    from ser.models import create_model
    from ser.training import fit_readout, prepared_data

    cfg = TrainConfig(arch="voicelin", data=str(demo_root), noise=False, max_clips=150)
    data = prepared_data(cfg, "voice", Dist(), lambda *a: None, lambda: False)
    with pytest.raises(TrainingError, match="VoiceNet is not one linear layer on its input"):
        fit_readout(create_model("voicenet"), data, 1.0)
