"""Acoustic facts per clip and per corpus, on audio files the tests write and read back."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser import acoustics, config
from ser.acoustics import (
    N_BANDS,
    band_frequencies,
    clip_acoustics,
    corpus_acoustics,
    corpus_counts,
    describe_measures,
    ltas_table,
    sample_clips,
)
from ser.audio import load_audio
from ser.corpora import load_corpus, load_pool

SR = acoustics.SAMPLE_RATE


def harmonic_tone(seconds: float, sr: int, f0: float, top_hz: float, amp: float = 0.3
                  ) -> np.ndarray:
    """Harmonics of ``f0`` up to (not above) ``top_hz``, falling 1/k: band-limited speech-ish."""
    t = np.arange(int(seconds * sr)) / sr
    ks = np.arange(1, int(top_hz // f0) + 1)
    y = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in ks)
    return (amp * y / np.max(np.abs(y))).astype(np.float32)


def lowpass_noise(seconds: float, sr: int, cutoff_hz: float, amp: float = 0.1,
                  seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * sr))
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(len(x), 1 / sr) > cutoff_hz] = 0
    y = np.fft.irfft(spec, len(x))
    return (amp * y / np.max(np.abs(y))).astype(np.float32)


def written(path: Path, y: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)
    return path


def measured(path: Path) -> dict:
    y, sr = load_audio(path, sr=SR)
    return clip_acoustics(y, sr)


def test_tone_band_limited_below_4k_measures_4k(tmp_path):
    facts = measured(written(tmp_path / "tone.wav", harmonic_tone(1.5, 16000, 200, 3990),
                             16000))
    assert facts["bandwidth_hz"] == pytest.approx(4000, rel=0.2)
    noise = measured(written(tmp_path / "noise.wav", lowpass_noise(1.5, SR, 4000), SR))
    assert noise["bandwidth_hz"] == pytest.approx(4000, rel=0.2)


def test_bandwidth_follows_the_recording_rate(tmp_path):
    """Full-band noise fills what its rate allows: ~8 kHz at 16 kHz, ~11 kHz at 22.05 kHz."""
    rng = np.random.default_rng(1)
    narrow = measured(written(tmp_path / "16k.wav",
                              (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000))
    wide = measured(written(tmp_path / "22k.wav",
                            (0.1 * rng.standard_normal(SR)).astype(np.float32), SR))
    assert narrow["bandwidth_hz"] == pytest.approx(8000, rel=0.2)
    assert wide["bandwidth_hz"] > 10000
    assert wide["bandwidth_hz"] > narrow["bandwidth_hz"] + 1500


def test_quieter_copy_is_lower_by_the_gain(tmp_path):
    y = harmonic_tone(1.0, SR, 180, 5000, amp=0.5)
    loud = measured(written(tmp_path / "loud.wav", y, SR, "FLOAT"))
    quiet = measured(written(tmp_path / "quiet.wav", y * 10 ** (-18 / 20), SR, "FLOAT"))
    assert quiet["rms_dbfs"] - loud["rms_dbfs"] == pytest.approx(-18.0, abs=0.1)
    assert quiet["peak_dbfs"] - loud["peak_dbfs"] == pytest.approx(-18.0, abs=0.1)
    assert np.median(quiet["ltas_db"] - loud["ltas_db"]) == pytest.approx(-18.0, abs=0.2)
    # the level relative to full scale is right: a sine of amplitude 0.5 is at −9 dBFS RMS
    sine = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    facts = clip_acoustics(sine.astype(np.float32), SR)
    assert facts["rms_dbfs"] == pytest.approx(-9.03, abs=0.05)
    assert facts["peak_dbfs"] == pytest.approx(-6.02, abs=0.05)


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_ltas_peaks_in_the_band_of_the_tone(tmp_path, freq):
    y = (0.4 * np.sin(2 * np.pi * freq * np.arange(SR) / SR)).astype(np.float32)
    facts = measured(written(tmp_path / f"{freq:.0f}.wav", y, SR))
    ltas = facts["ltas_db"]
    assert ltas.shape == (N_BANDS,) and ltas.dtype == np.float32
    centres = band_frequencies()
    nearest = int(np.argmin(np.abs(centres - freq)))
    assert abs(int(np.argmax(ltas)) - nearest) <= 1
    assert ltas.max() - np.median(ltas) > 30  # a tone, not a flat spectrum


def test_active_fraction_and_noise_floor_see_the_silence():
    speech = harmonic_tone(1.0, SR, 150, 4000, amp=0.4)
    padded = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(SR, np.float32)])
    hiss = (1e-4 * np.random.default_rng(0).standard_normal(len(padded))).astype(np.float32)
    facts = clip_acoustics(padded + hiss, SR)
    assert facts["duration_s"] == pytest.approx(3.0)
    assert facts["active_fraction"] == pytest.approx(1 / 3, abs=0.08)
    assert facts["noise_floor_dbfs"] == pytest.approx(-80, abs=3)  # the hiss's level
    loudest = facts["noise_floor_dbfs"] + facts["dynamic_range_db"]
    assert loudest == pytest.approx(20 * np.log10(0.4 / np.sqrt(2)), abs=4)  # the tone's
    # the same speech over a hiss 20 dB louder: the range shrinks by about 20 dB
    noisier = clip_acoustics(padded + 10 * hiss, SR)
    assert facts["dynamic_range_db"] - noisier["dynamic_range_db"] == pytest.approx(20, abs=2)
    assert clip_acoustics(speech, SR)["active_fraction"] > 0.95


def test_silence_and_tiny_clips_give_numbers_not_errors():
    silent = clip_acoustics(np.zeros(SR, np.float32), SR)
    assert silent["rms_dbfs"] == acoustics.FLOOR_DB and silent["bandwidth_hz"] == 0.0
    assert silent["dynamic_range_db"] == 0.0
    assert silent["active_fraction"] == 0.0 and np.all(silent["ltas_db"] == acoustics.FLOOR_DB)
    tiny = clip_acoustics(np.full(50, 0.1, np.float32), SR)
    assert np.isfinite(tiny["rms_dbfs"]) and tiny["ltas_db"].shape == (N_BANDS,)


# ----------------------------------------------------------------------- corpora


def _noise_file(path: Path, sr: int, cutoff: float, gain: float) -> None:
    seed = zlib.crc32(path.name.encode())
    written(path, lowpass_noise(0.6, sr, cutoff, amp=gain, seed=seed), sr)


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory) -> dict[str, Path]:
    """TESS-named clips band-limited to 3 kHz and loud; EMOVO-named ones full-band, quiet."""
    root = tmp_path_factory.mktemp("acoustic-pool")
    tess, emovo = root / "tess", root / "emovo"
    for spk in ("OAF", "YAF"):
        for word in ("back", "dog", "kite"):
            for emo in ("angry", "disgust", "fear", "happy", "neutral", "sad", "ps"):
                _noise_file(tess / f"{spk}_{word}_{emo}.wav", 24414, 3000, 0.5)
    for spk in ("f1", "m1", "m2"):
        for emo in ("rab", "dis", "pau", "gio", "neu", "tri", "sor"):
            _noise_file(emovo / spk / f"{emo}-{spk}-b1.wav", 48000, 20000, 0.05)
    return {"tess": tess, "emovo": emovo}


def test_sample_is_stratified_seeded_and_capped(two_corpora):
    m = load_pool([two_corpora["tess"], two_corpora["emovo"]]).manifest
    s = sample_clips(m, per_group=2, seed=3)
    counts = s.groupby(["corpus", "label"]).size()
    assert counts.max() == 2
    assert set(s["label"]) == set(config.LABELS) | {"ps", "sor"}
    assert list(s["clip"]) == list(sample_clips(m, per_group=2, seed=3)["clip"])
    assert list(s["clip"]) != list(sample_clips(m, per_group=2, seed=4)["clip"])


def test_corpus_acoustics_tells_the_corpora_apart(two_corpora):
    pool = load_pool([two_corpora["tess"], two_corpora["emovo"]])
    calls = []
    clips, ltas = corpus_acoustics(pool.manifest, per_corpus_emotion=3, workers=1,
                                   progress=lambda d, n: calls.append((d, n)))
    assert len(clips) == len(ltas) == 7 * 3 + 7 * 3
    assert ltas.shape[1] == N_BANDS and np.isfinite(ltas).all()
    assert calls[-1] == (len(clips), len(clips))
    assert (clips["error"] == "").all()
    med = describe_measures(clips)
    assert list(med.index) == ["tess", "emovo"]
    assert med.loc["tess", "bandwidth_hz"] == pytest.approx(3000, rel=0.2)
    assert med.loc["emovo", "bandwidth_hz"] > 10000  # 48 kHz full band, measured at 22.05
    # 20 dB apart in peak gain; EMOVO also loses its energy above 11 kHz to the 22.05-kHz
    # measuring rate, so the gap in RMS is a little wider
    assert 18 < med.loc["tess", "rms_dbfs"] - med.loc["emovo", "rms_dbfs"] < 26

    by_corpus = ltas_table(clips, ltas, "corpus")
    assert list(by_corpus.index) == ["tess", "emovo"]
    assert list(by_corpus["n"]) == [21, 21]
    freqs = np.array([c for c in by_corpus.columns if c != "n"], dtype=float)
    assert len(freqs) == N_BANDS and np.all(np.diff(freqs) > 0)
    high = freqs > 6000
    # relative LTAS: TESS has nothing above its 3-kHz cut, EMOVO is flat up there
    assert by_corpus.loc["tess"][list(freqs[high])].max() < -40
    assert by_corpus.loc["emovo"][list(freqs[high])].min() > -15
    assert by_corpus.drop(columns="n").max(axis=1).max() <= 0.0
    by_emotion = ltas_table(clips, ltas, ("corpus", "label"))
    labels = list(by_emotion.xs("tess", level="corpus").index)
    assert labels == [*config.LABELS, "ps"]
    absolute = ltas_table(clips, ltas, "corpus", relative=False)
    assert absolute.loc["tess", freqs[0]] != by_corpus.loc["tess", freqs[0]]


def test_an_undecodable_clip_is_reported_not_fatal(two_corpora, tmp_path):
    m = load_corpus(two_corpora["tess"]).manifest.head(4).copy()
    bad = tmp_path / "OAF_bad_angry.wav"
    bad.write_bytes(b"RIFF" + b"\0" * 60)
    m.loc[m.index[0], "path"] = str(bad)
    clips, ltas = corpus_acoustics(m, workers=1)
    assert (clips["error"] != "").sum() == 1
    assert np.isnan(ltas[clips["error"] != ""]).all()
    assert ltas_table(clips, ltas)["n"].sum() == 3


def test_corpus_counts_on_a_pool(two_corpora):
    pool = load_pool([two_corpora["tess"], two_corpora["emovo"]])
    counts = corpus_counts(pool.manifest)
    emotions = counts["emotions"]
    assert list(emotions.index) == ["tess", "emovo"]
    assert list(emotions.columns) == list(config.LABELS)
    assert emotions.loc["tess"].tolist() == [6] * 6 and emotions.loc["emovo"].tolist() == [3] * 6
    outside = counts["outside"].set_index(["corpus", "label"])["clips"]
    assert outside.to_dict() == {("tess", "ps"): 6, ("emovo", "sor"): 3}
    spk = counts["speakers"].set_index(["corpus", "sex"])["speakers"].to_dict()
    assert spk[("tess", "female")] == 2
    assert spk[("emovo", "female")] == 1 and spk[("emovo", "male")] == 2
    assert len(counts["durations"]) == len(pool.manifest)
