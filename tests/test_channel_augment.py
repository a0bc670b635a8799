"""The recording-chain augmentation (`ser.augment.channel_chain`): real signals, real FFTs."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import tone, write_clip

from ser.augment import AugmentConfig, augment_waveform, channel_chain, clip_rng
from ser.recipe import TrainConfig
from ser.store import FeatureStore, cache_key

SR = 22050


def voiced(seconds=2.0):
    """A 180-Hz tone with a syllable-rate envelope and pauses (speech-like level changes)."""
    y = tone(seconds, SR, freq=180)
    t = np.arange(len(y)) / SR
    return (y * np.clip(np.sin(2 * np.pi * 2 * t), 0, None)).astype(np.float32)


def band_energy(y, lo, hi):
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_chain_keeps_length_and_peak_and_is_seeded_by_clip():
    y = voiced()
    a = channel_chain(y, SR, clip_rng(0, "a"))
    again = channel_chain(y, SR, clip_rng(0, "a"))
    other = channel_chain(y, SR, clip_rng(0, "b"))
    assert a.shape == y.shape and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(np.abs(a).max(), np.abs(y).max(), rtol=1e-5)
    np.testing.assert_array_equal(a, again)
    assert not np.allclose(a, other)
    assert not np.allclose(a, y)


def test_chains_differ_in_spectrum_across_clips():
    """Across many draws the balance of low and high frequencies varies widely: that is the
    point (a microphone, room or line the model has not heard)."""
    rng = np.random.default_rng(0)
    y = rng.standard_normal(SR).astype(np.float32) * 0.1  # flat spectrum in
    ratios = []
    for i in range(40):
        out = channel_chain(y, SR, clip_rng(0, f"clip{i}"))
        ratios.append(10 * np.log10(band_energy(out, 4000, 8000)
                                    / band_energy(out, 250, 1000)))
    assert max(ratios) - min(ratios) > 15  # dB of spread in spectral tilt


def test_silent_empty_and_tiny_inputs_come_back_unchanged():
    for y in (np.zeros(SR, np.float32), np.zeros(0, np.float32), np.ones(8, np.float32)):
        out = channel_chain(y, SR, clip_rng(0, "x"))
        np.testing.assert_array_equal(out, y)


def test_config_round_trip_and_older_keys_stay_valid(tmp_path):
    """Off, the option is absent from configs and cache keys, so every feature cache and
    every run config written before it stays valid; on, it changes both."""
    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.0)]
    off = AugmentConfig(noise=True, pitch=True, seed=3)
    assert "channel" not in off.as_dict()
    assert "channel" not in TrainConfig().as_dict()
    on = replace(off, channel=True)
    assert on.as_dict()["channel"] is True and on.describe().endswith("recording chain")
    cfg = FeatureStore(cache=False).cfg
    assert cache_key(paths, cfg, ("fs2",), off) != cache_key(paths, cfg, ("fs2",), on)
    tc = TrainConfig(channel=True, noise=False)
    assert tc.augment().enabled and tc.describe_augmentation() == "recording chain"
    assert TrainConfig.from_dict(tc.as_dict()).channel is True


def test_store_makes_recording_chain_copies_of_real_files(tmp_path):
    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.5),
             write_clip(tmp_path / "1002_DFA_SAD_XX.wav", 1.2)]
    aug = AugmentConfig(channel=True, seed=5)
    store = FeatureStore(tmp_path / "cache", workers=1)
    plain = store.features(paths)
    copy = store.augmented(paths, aug)
    assert copy["fs2"].shape == plain["fs2"].shape and np.isfinite(copy["fs1"]).all()
    assert not np.allclose(copy["fs2"], plain["fs2"])
    np.testing.assert_array_equal(
        FeatureStore(tmp_path / "cache", workers=1).augmented(paths, aug)["fs2"], copy["fs2"])
    # the waveform behind a copy depends only on the clip's key, not on the call
    y = voiced(1.0)
    np.testing.assert_array_equal(augment_waveform(y, SR, aug, "k"),
                                  augment_waveform(y, SR, aug, "k"))


@pytest.mark.slow
def test_training_rows_of_a_recording_chain_run(demo_root):
    """A run with the option gets one recording-chain copy of every training clip (training
    clips only), distinct from the originals."""
    import torch

    from ser.dataset import prepare

    base = dict(arch="lenet2d", max_clips=60, noise=False, seed=1)
    plain = prepare(TrainConfig(**base), "fs2")
    chained = prepare(TrainConfig(**base, channel=True), "fs2")
    n = len(plain.selection.split.train)
    assert len(plain.labels["train"]) == n
    assert len(chained.labels["train"]) == 2 * n and chained.n_augmented == n
    x = chained.inputs["train"][0]
    assert not torch.allclose(x[:n], x[n:])
    assert len(chained.labels["test"]) == len(plain.labels["test"])
