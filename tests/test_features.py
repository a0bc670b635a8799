import subprocess
import sys

import librosa
import numpy as np
import pytest
from conftest import tone, write_clip

from ser import features
from ser.audio import load_audio
from ser.augment import AugmentConfig
from ser.features import DEFAULT
from ser.store import FeatureError, FeatureStore, cache_key


@pytest.fixture(scope="module")
def clip():
    y = tone(2.3, 22050, freq=180)
    y += 0.01 * np.random.default_rng(0).standard_normal(len(y)).astype(np.float32)
    return y


def test_fs1_equals_separate_librosa_calls(clip):
    y, sr = clip, 22050
    kw = dict(n_fft=2048, hop_length=512)
    ref = np.concatenate([np.mean(x, axis=1) for x in [
        librosa.feature.zero_crossing_rate(y=y, frame_length=2048, hop_length=512),
        librosa.feature.rms(y=y, frame_length=2048, hop_length=512),
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, **kw),
        # tuning passed in: librosa's own estimate runs a numba stencil that can crash the
        # process (see test_parabolic_shift_equals_the_stencil_piptrack_uses)
        librosa.feature.chroma_stft(y=y, sr=sr, tuning=reference_tuning(
            np.abs(librosa.stft(y, **kw)) ** 2), **kw),
        librosa.feature.spectral_contrast(y=y, sr=sr, **kw),
        librosa.feature.melspectrogram(y=y, sr=sr, **kw),
    ]])
    v = features.fs1(y)
    assert v.shape == (169,) and v.dtype == np.float32
    np.testing.assert_allclose(v, ref, rtol=1e-4, atol=1e-5)


def test_fs2_equals_librosa_and_pads_with_silence(clip):
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=clip, sr=22050, n_fft=2048,
                                                             hop_length=512),
                              ref=np.max, top_db=80)
    m = features.fs2(clip)
    assert m.shape == (128, 216) and m.dtype == np.float32
    t = ref.shape[1]
    np.testing.assert_allclose(m[:, :t], ref, atol=1e-3)
    assert (m[:, t:] == -80).all()
    assert m.max() == 0 and m.min() >= -80


def test_fs2_crops_long_clips_and_keeps_variable_length():
    y = tone(8.0, 22050)
    assert features.fs2(y).shape == (128, 216)
    assert features.fs2(y, frames=0).shape[1] == 1 + len(y) // 512


def test_silence_is_the_floor_not_a_roar():
    z = np.zeros(22050, np.float32)
    assert (features.fs2(z) == -80).all()
    v = features.fs1(z)
    assert np.isfinite(v).all()


def test_clip_features_single_stft_matches_separate(clip):
    both = features.clip_features(clip)
    np.testing.assert_array_equal(both["fs1"], features.fs1(clip))
    np.testing.assert_array_equal(both["fs2"], features.fs2(clip))


def batch_entries(folder) -> list:
    """The cache's batch entries (not its per-clip folder, ``copies``)."""
    return [d for d in folder.iterdir() if d.name != "copies"]


def plain_store(root=None, **kw) -> FeatureStore:
    return FeatureStore(root / "features" if root else None, **kw)


def test_batch_extraction_and_cache(tmp_path):
    paths = [write_clip(tmp_path / f"100{i}_DFA_ANG_XX.wav", 1.0 + 0.3 * i, 16000,
                        freq=150 + 30 * i) for i in range(4)]
    cache = tmp_path / "cache"
    calls = []
    a = plain_store(cache, workers=2).features(paths, progress=lambda d, t: calls.append((d, t)))
    assert a["fs1"].shape == (4, 169) and a["fs2"].shape == (4, 128, 216)
    assert calls[-1] == (4, 4)
    y, _ = load_audio(paths[2], sr=22050)
    direct = features.clip_features(y)
    np.testing.assert_allclose(a["fs1"][2], direct["fs1"], rtol=1e-5, atol=1e-6)
    b = plain_store(cache).features(paths)
    for s in ("fs1", "fs2"):
        np.testing.assert_array_equal(np.asarray(a[s]), np.asarray(b[s]))
    def batches():
        return [d for d in (cache / "features").iterdir() if d.name != "copies"]

    assert len(batches()) == 1
    # a changed clip changes the key: no stale features
    write_clip(paths[0], 2.0, 16000, freq=300)
    plain_store(cache, workers=1).features(paths)
    assert len(batches()) == 2


def test_plain_features_are_reused_clip_by_clip_across_batches(tmp_path):
    """Regression: features were cached per batch of clips only, so a new pool of corpora
    (or another held-out corpus) extracted every clip again."""
    paths = [write_clip(tmp_path / f"100{i}_DFA_HAP_XX.wav", 1.0, freq=150 + 30 * i)
             for i in range(3)]
    store = plain_store(tmp_path / "c", workers=1)
    first = store.features(paths[:2])
    calls = []
    other = store.features(paths[1:], progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (1, 1)  # only the new clip was decoded
    np.testing.assert_array_equal(other["fs2"][0], first["fs2"][1])
    fresh = plain_store(cache=False, workers=1).features(paths[1:])
    for s in ("fs1", "fs2"):
        np.testing.assert_array_equal(np.asarray(other[s]), np.asarray(fresh[s]))


def test_cache_follows_content_not_place_or_file_times(tmp_path):
    """Regression: the cache was keyed on path and mtime, so a corpus provisioned again
    (same files, new times) or copied elsewhere had every feature extracted again."""
    import os
    import shutil

    src = tmp_path / "corpus"
    paths = [write_clip(src / f"100{i}_DFA_ANG_XX.wav", 1.0, 16000, freq=150 + 40 * i)
             for i in range(3)]
    cache = tmp_path / "cache"
    aug = AugmentConfig(noise=True, pitch=False, stretch=False)
    a = plain_store(cache, workers=1).features(paths)
    ca = plain_store(cache, workers=1).augmented(paths, aug)
    entries = sorted(d.name for d in (cache / "features").iterdir() if d.name != "copies")
    copy = tmp_path / "elsewhere"
    shutil.copytree(src, copy, copy_function=shutil.copyfile)  # new files, new times
    moved = [copy / p.name for p in paths]
    for p in moved:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    b = plain_store(cache, workers=1).features(moved)
    cb = plain_store(cache, workers=1).augmented(moved, aug)
    assert sorted(d.name for d in (cache / "features").iterdir()
                  if d.name != "copies") == entries
    for s in ("fs1", "fs2"):
        np.testing.assert_array_equal(np.asarray(a[s]), np.asarray(b[s]))
        np.testing.assert_array_equal(np.asarray(ca[s]), np.asarray(cb[s]))
    # same name, same size, other sound: a new key, not the stale features
    write_clip(moved[1], 1.0, 16000, freq=400)
    assert os.path.getsize(moved[1]) == os.path.getsize(paths[1])
    assert cache_key(moved, DEFAULT, ("fs2",), None) != cache_key(paths, DEFAULT, ("fs2",), None)
    c = plain_store(cache, workers=1).features(moved)
    assert not np.array_equal(np.asarray(c["fs2"][1]), np.asarray(a["fs2"][1]))


def test_a_folder_or_missing_file_among_clips_is_a_feature_error_not_a_crash(tmp_path):
    """Regression: hashing clips for the cache key raised IsADirectoryError on a folder
    named like a clip, before extraction could say which clip was wrong."""
    folder = tmp_path / "1001_DFA_ANG_XX.wav"
    folder.mkdir()
    good = write_clip(tmp_path / "1002_DFA_ANG_XX.wav", 1.0)
    for cache in (False, True):
        with pytest.raises(FeatureError, match="folder"):
            plain_store(tmp_path if cache else None, cache=cache, workers=1).features(
                [good, folder])
    with pytest.raises(FeatureError):
        plain_store(cache=False, workers=1).features([good, tmp_path / "gone.wav"])


def test_other_feature_config_sizes_fs1_and_fs2(tmp_path):
    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.0)]
    cfg = features.FeatureConfig(n_mels=64, n_mfcc=13, hop_length=220, fs2_frames=500)
    a = plain_store(tmp_path, cfg=cfg, workers=1).features(paths)
    assert cfg.fs1_dim == 1 + 1 + 13 + 12 + 7 + 64
    assert a["fs1"].shape == (1, cfg.fs1_dim) and a["fs2"].shape == (1, 64, 500)
    b = plain_store(tmp_path, workers=1).features(paths)  # the seed config: its own entry
    assert b["fs1"].shape == (1, 169)
    assert len(batch_entries(tmp_path / "features")) == 2


def test_augmented_copy_is_deterministic_and_different(tmp_path):
    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.5)]
    aug = AugmentConfig(noise=True, pitch=True, stretch=True, seed=7)
    store = plain_store(cache=False, workers=1)
    a = store.augmented(paths, aug)
    b = store.augmented(paths, aug)
    plain = store.features(paths)
    np.testing.assert_array_equal(a["fs2"], b["fs2"])
    assert not np.allclose(a["fs2"], plain["fs2"])


def test_numbered_copies_differ_and_the_first_keeps_its_definition(tmp_path):
    from dataclasses import replace

    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.5)]
    aug = AugmentConfig(noise=True, pitch=True, seed=7)
    store = plain_store(cache=False, workers=1)
    first = store.augmented(paths, aug)
    second = store.augmented(paths, replace(aug, copy=1))
    again = store.augmented(paths, replace(aug, copy=1))
    assert not np.allclose(first["fs2"], second["fs2"])
    np.testing.assert_array_equal(second["fs2"], again["fs2"])
    # Copy 0 is described (and so cached and drawn) exactly as before copies were numbered;
    # the shipped models' re-training commands depend on it.
    assert "copy" not in aug.as_dict() and replace(aug, copy=1).as_dict()["copy"] == 1
    assert (cache_key(paths, DEFAULT, ("fs2",), aug)
            != cache_key(paths, DEFAULT, ("fs2",), replace(aug, copy=1)))


def test_unreadable_clip_is_named(tmp_path):
    bad = tmp_path / "1001_DFA_ANG_XX.wav"
    bad.write_bytes(b"nope")
    with pytest.raises(FeatureError, match="1001_DFA_ANG_XX"):
        plain_store(cache=False, workers=1).features([bad])


def test_config_roundtrip():
    assert features.FeatureConfig.from_dict(DEFAULT.as_dict()) == DEFAULT
    assert DEFAULT.window_seconds == pytest.approx(5.015, abs=0.01)
    assert DEFAULT.fs1_dim == 169 and DEFAULT.input_shape("fs2") == (1, 128, 216)


def test_plain_and_augmented_in_one_pass_match_separate_calls(tmp_path):
    paths = [write_clip(tmp_path / f"100{i}_DFA_SAD_XX.wav", 1.2, freq=140 + 40 * i)
             for i in range(3)]
    aug = AugmentConfig(noise=True, seed=1)
    plain, augmented = plain_store(tmp_path / "c", workers=1).with_copies(
        paths, paths[:2], augment=aug)
    sep = plain_store(cache=False, workers=1)
    sep_plain, sep_aug = sep.features(paths), sep.augmented(paths[:2], aug)
    for s in ("fs1", "fs2"):
        np.testing.assert_array_equal(plain[s], sep_plain[s])
        np.testing.assert_array_equal(augmented[s], sep_aug[s])
    # both halves were cached under the keys a separate call uses
    again = plain_store(tmp_path / "c").augmented(paths[:2], aug)
    np.testing.assert_array_equal(np.asarray(again["fs2"]), augmented["fs2"])


def test_several_copies_in_one_pass_match_and_reuse_the_cache(tmp_path):
    from dataclasses import replace

    paths = [write_clip(tmp_path / f"100{i}_DFA_SAD_XX.wav", 1.2, freq=150 + 30 * i)
             for i in range(2)]
    aug = AugmentConfig(noise=True, pitch=True, seed=4)
    cache = tmp_path / "c"
    # copy 0 cached first (a one-copy run), then two copies: only copy 1 is computed
    plain_store(cache, workers=1).augmented(paths, aug)
    both = plain_store(cache, workers=1).augmented(paths, aug, copies=2)
    assert both["fs2"].shape[0] == 4
    for k in range(2):
        alone = plain_store(cache=False, workers=1).augmented(paths, replace(aug, copy=k))
        np.testing.assert_array_equal(both["fs2"][2 * k:2 * k + 2], alone["fs2"])
    batches = [d for d in (cache / "features").iterdir() if d.name != "copies"]
    assert len(batches) == 2


def test_parabolic_shift_equals_the_stencil_piptrack_uses():
    # Regression: librosa runs this stencil as a numba gufunc, which crashed the process
    # (segmentation fault) with numba 0.68 / numpy 2.4; FS1's chroma needs it.
    x = np.abs(np.random.default_rng(1).standard_normal((40, 6))).astype(np.float32)
    x[5, 2] = x[4, 2] = x[6, 2]  # flat: no vertex
    ref = np.zeros_like(x)
    for j in range(x.shape[1]):
        for i in range(1, len(x) - 1):
            a = x[i + 1, j] + x[i - 1, j] - np.float32(2) * x[i, j]
            b = (x[i + 1, j] - x[i - 1, j]) / np.float32(2)
            ref[i, j] = 0 if abs(b) >= abs(a) else -b / a
    out = features.parabolic_shift(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, ref)


@pytest.mark.slow
def test_fs1_of_many_clips_runs_in_a_fresh_process():
    # The crash above killed the worker process only after some hundred calls.
    code = ("import numpy as np; from ser.features import fs1\n"
            "rng = np.random.default_rng(0)\n"
            "for i in range(400):\n"
            "    fs1((rng.standard_normal(11025) * 0.1).astype(np.float32))\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("n", [100, 2048, 5000, 22050, 40001])
def test_fast_zero_crossing_rate_equals_librosa(n):
    y = (np.random.default_rng(n).standard_normal(n) * 0.1).astype(np.float32)
    y[::7] = 0.0
    y[::11] = 1e-12  # below librosa's threshold: counts as zero
    ref = librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)
    np.testing.assert_array_equal(features.zero_crossing_rate(y), ref)


@pytest.mark.parametrize("freq,noise", [(110.0, 0.0), (233.0, 0.05), (440.0, 0.2), (1500.0, 0.01)])
def test_band_limited_tuning_equals_librosa(freq, noise):
    y = tone(2.0, 22050, freq=freq)
    y = y + noise * np.random.default_rng(int(freq)).standard_normal(len(y)).astype(np.float32)
    S_pow = features.magnitude_stft(y) ** 2
    assert features.estimate_tuning(S_pow) == reference_tuning(S_pow)


def reference_tuning(S_pow, sr=22050, n_fft=2048, fmin=150.0, fmax=4000.0, threshold=0.1):
    """librosa.estimate_tuning's recipe (piptrack on the whole spectrogram, then its
    150–4000 Hz peaks) written out with the parabolic stencil in numpy."""
    S = np.abs(S_pow)
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    shift = features.parabolic_shift(S)
    dskew = 0.5 * np.gradient(S, axis=-2) * shift
    ref = threshold * S.max(axis=-2, keepdims=True)
    band = ((freqs >= fmin) & (freqs < fmax))[:, None]
    idx = np.nonzero(band & librosa.util.localmax(S * (S > ref), axis=-2))
    pitch = (idx[0] + shift[idx]) * float(sr) / n_fft
    mag = S[idx] + dskew[idx]
    voiced = pitch > 0
    floor = np.median(mag[voiced]) if voiced.any() else 0.0
    return float(librosa.pitch_tuning(pitch[(mag >= floor) & voiced], resolution=0.01,
                                      bins_per_octave=12))


def test_utterance_normalisation_removes_a_fixed_channel_gain():
    # A microphone or room that boosts some bands by a fixed amount adds a per-band offset
    # in dB: after normalisation the two recordings are the same image.
    rng = np.random.default_rng(0)
    db = np.clip(rng.normal(-30, 8, (128, 216)), -80, 0).astype(np.float32)
    db[:, 150:] = -80.0  # padding: not a sounding frame
    channel = np.linspace(-12, 6, 128, dtype=np.float32)[:, None]
    coloured = db.copy()
    coloured[:, :150] += channel
    a, b = features.utterance_normalise(db), features.utterance_normalise(coloured)
    np.testing.assert_allclose(a[:, :150], b[:, :150], atol=1e-4)
    np.testing.assert_allclose(a[:, :150].mean(axis=1), 0, atol=1e-4)
    batch = features.utterance_normalise(np.stack([db, coloured]))
    np.testing.assert_allclose(batch[0], a, atol=1e-6)
    silent = np.full((128, 216), -80.0, np.float32)
    np.testing.assert_array_equal(features.utterance_normalise(silent), silent)
    # with a higher floor (top_db=30) the padding, at -30 dB, is still not sounding
    high = np.maximum(db, -30.0)
    assert features.utterance_normalise(high, top_db=30)[:, :150].mean() == pytest.approx(
        0, abs=1e-4)


def test_normalised_config_shares_the_cache_and_keeps_old_keys(tmp_path):
    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.2)]
    cfg = features.FeatureConfig(fs2_norm="utterance")
    assert "fs2_norm" not in DEFAULT.as_dict() and cfg.as_dict()["fs2_norm"] == "utterance"
    plain = plain_store(tmp_path, workers=1).features(paths)
    normed = plain_store(tmp_path, cfg=cfg, workers=1).features(paths)
    assert len(batch_entries(tmp_path / "features")) == 1  # one extraction serves both
    np.testing.assert_allclose(normed["fs2"], features.utterance_normalise(plain["fs2"]))
    y, _ = load_audio(paths[0], sr=22050)
    np.testing.assert_allclose(features.clip_features(y, cfg=cfg)["fs2"], normed["fs2"][0],
                               atol=1e-4)
    with pytest.raises(ValueError, match="fs2_norm"):
        features.FeatureConfig(fs2_norm="speaker")


def _speech_in_noise(noise_gain: float, speech_gain: float = 0.3, seed: int = 0) -> np.ndarray:
    """1.5 s of harmonic 'syllables' with pauses, over steady white noise."""
    sr = 22050
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.5 * sr)) / sr
    voice = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 12))
    gate = (np.sin(2 * np.pi * 2.0 * t) > 0.3).astype(float)  # on 40 % of the time
    y = speech_gain * voice * gate / 3 + noise_gain * rng.standard_normal(len(t))
    return y.astype(np.float32)


def test_floor_subtraction_makes_the_noise_level_invisible():
    # The same 'speech' over a noisy and over a nearly clean background: in the seeds'
    # log-mel the pauses sit at very different depths below the peak (a cue CREMA-D's
    # networks learn); with the floor removed both have their pauses at -top_db and the
    # speech the same shape.
    noisy, clean = _speech_in_noise(0.01), _speech_in_noise(0.0003)
    a, b = features.fs2(noisy), features.fs2(clean)
    real = a.max(axis=0) > -79.9
    pauses = real & (features.fs2(_speech_in_noise(0.0, seed=1)).max(axis=0) < -60)
    assert a[:, pauses].mean() - b[:, pauses].mean() > 15  # the raw floors differ
    da, db_ = features.floor_subtract(a), features.floor_subtract(b)
    assert da[:, pauses].mean() < -75 and db_[:, pauses].mean() < -75
    speech = real & ~pauses
    loud = (da > -40) & (db_ > -40)
    assert loud[:, speech].mean() > 0.05
    assert np.abs(da - db_)[loud].mean() < 3.0  # what is left of the speech agrees
    # padding stays padding, the values stay in [-top_db, 0] with 0 dB reached
    assert (da[:, ~real] == -80).all() and da.max() == 0 and da.min() >= -80
    # batch = one by one; silence stays silence
    np.testing.assert_allclose(features.floor_subtract(np.stack([a, b])), np.stack([da, db_]),
                               atol=1e-5)
    silent = np.full((128, 216), -80.0, np.float32)
    np.testing.assert_array_equal(features.floor_subtract(silent), silent)


@pytest.mark.parametrize("norm, apply", [("denoise", features.floor_subtract),
                                          ("lowpass", features.lowpass)])
def test_normalised_config_shares_the_cache_and_predicts_like_training(tmp_path, norm, apply):
    # 44.1 kHz: the low-pass has bands above 8 kHz to silence
    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.2, sr=44100)]
    cfg = features.FeatureConfig(fs2_norm=norm)
    assert cfg.as_dict()["fs2_norm"] == norm and cfg.key() != DEFAULT.key()
    assert features.FeatureConfig.from_dict(cfg.as_dict()) == cfg
    plain = plain_store(tmp_path, workers=1).features(paths)
    normed = plain_store(tmp_path, cfg=cfg, workers=1).features(paths)
    assert len(batch_entries(tmp_path / "features")) == 1
    np.testing.assert_allclose(normed["fs2"], apply(plain["fs2"]))
    y, _ = load_audio(paths[0], sr=22050)
    np.testing.assert_allclose(features.clip_features(y, cfg=cfg)["fs2"], normed["fs2"][0],
                               atol=1e-3)
    var = features.clip_features(y, cfg=cfg, length="variable")["fs2"]
    t = var.shape[1]
    np.testing.assert_allclose(var[:, :min(t, 216)], normed["fs2"][0][:, :min(t, 216)],
                               atol=1e-3)


def _voiced_with_hiss(sr: int, seconds: float = 1.5) -> np.ndarray:
    """A buzzy vowel-like tone plus hiss that reaches up to the Nyquist frequency."""
    t = np.arange(int(seconds * sr)) / sr
    voice = sum(np.sin(2 * np.pi * 160 * k * t) / k for k in range(1, 25))
    hiss = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    return (0.2 * voice + hiss).astype(np.float32)


def test_lowpass_makes_a_full_band_and_a_16khz_recording_look_alike():
    # The same sound recorded at 44.1 kHz and through a 16 kHz chain (CREMA-D's): the seeds'
    # log-mel tells them apart by the bands above 8 kHz; the low-pass image does not.
    wide = _voiced_with_hiss(44100)
    full = librosa.resample(wide, orig_sr=44100, target_sr=22050)
    narrow = librosa.resample(librosa.resample(wide, orig_sr=44100, target_sr=16000),
                              orig_sr=16000, target_sr=22050)
    a, b = features.fs2(full), features.fs2(narrow)
    keep = features.lowpass_bands(22050, 128)
    assert keep == 115
    sounding = slice(0, 60)  # 1.5 s of 5; the rest is padding
    assert a[keep:, sounding].mean() - b[keep:, sounding].mean() > 20  # hiss against ~nothing
    la, lb = features.lowpass(a), features.lowpass(b)
    assert (la[keep:] == -80).all() and (lb[keep:] == -80).all()
    assert np.abs(la[:keep - 3] - lb[:keep - 3]).mean() < 1.0  # below the cutoff: the same
    assert la.max() == 0 and la.min() >= -80
    # a clip whose loudest bin lay above the cutoff is put back relative to what is left
    hi = np.full((128, 216), -80.0, np.float32)
    hi[:keep, :100] = -30.0
    hi[120, 10] = 0.0
    out = features.lowpass(hi)
    assert out.max() == 0 and (out[:keep, :100] == 0).all() and (out[:keep, 100:] == -80).all()
    # batch = one by one; silence stays silence; the input is left as it was
    np.testing.assert_array_equal(features.lowpass(np.stack([a, hi])), np.stack([la, out]))
    assert hi[120, 10] == 0.0
    silent = np.full((128, 216), -80.0, np.float32)
    np.testing.assert_array_equal(features.lowpass(silent), silent)


def test_augmented_copies_are_reused_clip_by_clip_across_batches(tmp_path):
    paths = [write_clip(tmp_path / f"100{i}_DFA_SAD_XX.wav", 1.0, freq=150 + 30 * i)
             for i in range(3)]
    aug = AugmentConfig(noise=True, pitch=True, seed=2)
    store = plain_store(tmp_path / "c", workers=1)
    first = store.augmented(paths[:2], aug)  # one run's training clips
    calls = []
    other = store.augmented(paths[1:], aug, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (1, 1)  # only the new clip was decoded and augmented
    np.testing.assert_array_equal(other["fs2"][0], first["fs2"][1])
    fresh = plain_store(cache=False, workers=1).augmented(paths[1:], aug)
    np.testing.assert_array_equal(other["fs2"], fresh["fs2"])
    # a damaged per-clip file is recomputed, not used (batch caches removed to get there)
    import shutil

    for f in (store.root / "copies").rglob("*.npz"):
        f.write_bytes(b"broken")
    for folder in store.root.iterdir():
        if folder.name != "copies":
            shutil.rmtree(folder)
    again = plain_store(tmp_path / "c", workers=1).augmented(paths[1:], aug)
    np.testing.assert_array_equal(again["fs2"], fresh["fs2"])


def test_fs2_does_not_see_the_recording_level(clip):
    """FS2 is in dB relative to the clip's own maximum, so loudness normalisation cannot
    change what a 2D model sees (the cross-corpus notes rely on this)."""
    ref = features.fs2(clip)
    for gain in (0.02, 0.5, 3.0):
        np.testing.assert_allclose(features.fs2(clip * gain), ref, atol=1e-3)
    assert not np.allclose(features.fs1(clip * 0.02), features.fs1(clip))  # FS1 does


def test_no_cache_means_no_content_hashing(tmp_path):
    """Regression: a store without its cache still hashed every clip's bytes for a cache key
    it never used."""
    from ser import fileio

    path = write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 0.5, 16000)
    plain_store(cache=False, workers=1).features([path], spaces=("fs1",))
    assert not any(k[0] == str(path.resolve()) or k[0] == str(path)
                   for k in fileio._DIGESTS)
    plain_store(tmp_path, workers=1).features([path], spaces=("fs1",))
    assert any(k[0] in (str(path.resolve()), str(path)) for k in fileio._DIGESTS)
