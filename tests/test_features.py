import librosa
import numpy as np
import pytest
from conftest import tone, write_clip

from ser import features
from ser.augment import AugmentConfig
from ser.features import DEFAULT


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
        librosa.feature.chroma_stft(y=y, sr=sr, **kw),
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


def test_batch_extraction_and_cache(tmp_path):
    paths = [write_clip(tmp_path / f"100{i}_DFA_ANG_XX.wav", 1.0 + 0.3 * i, 16000,
                        freq=150 + 30 * i) for i in range(4)]
    cache = tmp_path / "cache"
    calls = []
    a = features.extract_paths(paths, cache_root=cache, workers=2,
                               progress=lambda d, t: calls.append((d, t)))
    assert a["fs1"].shape == (4, 169) and a["fs2"].shape == (4, 128, 216)
    assert calls[-1] == (4, 4)
    direct = features.features_from_source(paths[2])
    np.testing.assert_allclose(a["fs1"][2], direct["fs1"], rtol=1e-5, atol=1e-6)
    b = features.extract_paths(paths, cache_root=cache)
    for s in ("fs1", "fs2"):
        np.testing.assert_array_equal(np.asarray(a[s]), np.asarray(b[s]))
    assert len(list((cache / "features").iterdir())) == 1
    # a changed clip changes the key: no stale features
    write_clip(paths[0], 2.0, 16000, freq=300)
    features.extract_paths(paths, cache_root=cache, workers=1)
    assert len(list((cache / "features").iterdir())) == 2


def test_augmented_copy_is_deterministic_and_different(tmp_path):
    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.5)]
    aug = AugmentConfig(noise=True, pitch=True, stretch=True, seed=7)
    a = features.extract_paths(paths, augment=aug, cache=False, workers=1)
    b = features.extract_paths(paths, augment=aug, cache=False, workers=1)
    plain = features.extract_paths(paths, cache=False, workers=1)
    np.testing.assert_array_equal(a["fs2"], b["fs2"])
    assert not np.allclose(a["fs2"], plain["fs2"])


def test_numbered_copies_differ_and_the_first_keeps_its_definition(tmp_path):
    from dataclasses import replace

    paths = [write_clip(tmp_path / "1001_DFA_ANG_XX.wav", 1.5)]
    aug = AugmentConfig(noise=True, pitch=True, seed=7)
    first = features.extract_paths(paths, augment=aug, cache=False, workers=1)
    second = features.extract_paths(paths, augment=replace(aug, copy=1), cache=False, workers=1)
    again = features.extract_paths(paths, augment=replace(aug, copy=1), cache=False, workers=1)
    assert not np.allclose(first["fs2"], second["fs2"])
    np.testing.assert_array_equal(second["fs2"], again["fs2"])
    # Copy 0 is described (and so cached and drawn) exactly as before copies were numbered;
    # the shipped models' re-training commands depend on it.
    assert "copy" not in aug.as_dict() and replace(aug, copy=1).as_dict()["copy"] == 1
    assert (features.cache_key(paths, DEFAULT, ("fs2",), aug)
            != features.cache_key(paths, DEFAULT, ("fs2",), replace(aug, copy=1)))


def test_unreadable_clip_is_named(tmp_path):
    bad = tmp_path / "1001_DFA_ANG_XX.wav"
    bad.write_bytes(b"nope")
    with pytest.raises(features.FeatureError, match="1001_DFA_ANG_XX"):
        features.extract_paths([bad], cache=False, workers=1)


def test_config_roundtrip():
    assert features.FeatureConfig.from_dict(DEFAULT.as_dict()) == DEFAULT
    assert DEFAULT.window_seconds == pytest.approx(5.015, abs=0.01)


def test_plain_and_augmented_in_one_pass_match_separate_calls(tmp_path):
    paths = [write_clip(tmp_path / f"100{i}_DFA_SAD_XX.wav", 1.2, freq=140 + 40 * i)
             for i in range(3)]
    aug = AugmentConfig(noise=True, seed=1)
    plain, augmented = features.extract_with_augmented(paths, paths[:2], augment=aug,
                                                       cache_root=tmp_path / "c", workers=1)
    sep_plain = features.extract_paths(paths, cache=False, workers=1)
    sep_aug = features.extract_paths(paths[:2], augment=aug, cache=False, workers=1)
    for s in ("fs1", "fs2"):
        np.testing.assert_array_equal(plain[s], sep_plain[s])
        np.testing.assert_array_equal(augmented[s], sep_aug[s])
    # both halves were cached under the keys extract_paths uses
    again = features.extract_paths(paths[:2], augment=aug, cache_root=tmp_path / "c")
    np.testing.assert_array_equal(np.asarray(again["fs2"]), augmented["fs2"])


def test_several_copies_in_one_pass_match_and_reuse_the_cache(tmp_path):
    from dataclasses import replace

    paths = [write_clip(tmp_path / f"100{i}_DFA_SAD_XX.wav", 1.2, freq=150 + 30 * i)
             for i in range(2)]
    aug = AugmentConfig(noise=True, pitch=True, seed=4)
    cache = tmp_path / "c"
    # copy 0 cached first (a one-copy run), then two copies: only copy 1 is computed
    features.extract_paths(paths, augment=aug, cache_root=cache, workers=1)
    _, both = features.extract_with_augmented([], paths, augment=aug, copies=2,
                                              cache_root=cache, workers=1)
    assert both["fs2"].shape[0] == 4
    for k in range(2):
        alone = features.extract_paths(paths, augment=replace(aug, copy=k), cache=False,
                                       workers=1)
        np.testing.assert_array_equal(both["fs2"][2 * k:2 * k + 2], alone["fs2"])
    assert len(list((cache / "features").iterdir())) == 2


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
    assert features.estimate_tuning(S_pow) == librosa.estimate_tuning(S=S_pow, sr=22050,
                                                                      bins_per_octave=12)
