"""Issue #14 lower items: names that become paths (8), the fallback decoder's header probe
(10), file modes honour the umask (14b), sample-rate checks on every path (7)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from abuse.corpus import wav_with_rate

from ser.audio import AudioError, info, load_audio
from ser.fileio import atomic_write_bytes, safe_name

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["../../escaped", "/etc/x", "..", ".hidden", "a/b", "",
                                  "-rf", "x" * 101, "a\\..\\b", "ok\n"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ValueError, match="cannot be used"):
        safe_name(name)


def test_safe_names_pass():
    for name in ("ser2d.crema-si", "lenet1d.crema-si-pitch-x3", "my_model+v2"):
        assert safe_name(name) == name


def test_ship_to_an_escaping_name_writes_nothing_outside_models(tmp_path):
    models = tmp_path / "a" / "b" / "models"
    models.mkdir(parents=True)
    env = {**os.environ, "SER_MODELS_DIR": str(models)}
    t = time.time()
    out = subprocess.run([sys.executable, "-m", "ser", "train", "--arch", "lenet1d",
                          "--epochs", "1", "--ship", "../../escaped"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cannot be used" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert time.time() - t < 60  # refused before any training
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "a" / "escaped").exists()
    from ser.bundle import BundleError
    from ser.zoo import load_pretrained, ship_run

    with pytest.raises(BundleError, match="cannot be used"):
        load_pretrained("../../etc", folder=models)
    with pytest.raises(ValueError, match="cannot be used"):
        ship_run("no-such-run", "../../escaped", folder=models)


@pytest.mark.parametrize("rate", [0, 1, 999, 0xFFFFFFFF, 2_000_000_000])
def test_impossible_sample_rates_are_refused_everywhere(rate, tmp_path):
    data = wav_with_rate(rate)
    p = tmp_path / "x.wav"
    p.write_bytes(data)
    for call in (lambda: info(data), lambda: load_audio(data), lambda: load_audio(p),
                 lambda: load_audio(p, sr=22050)):
        with pytest.raises(AudioError, match="sample rate"):
            call()


def test_the_fallback_decoder_knows_the_duration_before_decoding(tmp_path):
    """Item 10: the fallback path (audioread) reads the header first; `decode` refuses a
    long file from it without decoding the samples."""
    import numpy as np
    import soundfile as sf

    from ser.audio import _Fallback

    p = tmp_path / "long.wav"
    sf.write(p, np.zeros(700 * 1000, np.int16), 1000, subtype="PCM_16")
    f = _Fallback(p.read_bytes(), "long.wav")
    try:
        assert f.samplerate == 1000 and abs(f.duration_s - 700) < 1
    finally:
        f.close()
    with pytest.raises(AudioError, match="rate"):
        _Fallback(wav_with_rate(0), "zero.wav")


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o666 & ~mask


def test_bundles_and_status_files_are_not_private(tmp_path):
    from predict_helpers import make_bundle

    from ser import runs
    from ser.recipe import TrainConfig

    old = os.umask(0o022)
    try:
        p = make_bundle(tmp_path / "m" / "model.pt")
        run_id = runs.create(TrainConfig(arch="lenet1d"))
    finally:
        os.umask(old)
    for f in (p, p.with_name("card.json"), runs.run_dir(run_id) / "status.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


# ------------------------------------------------------------------ item 13: bounded work

def _long_wav(path: Path, minutes: float, sr: int = 16000) -> Path:
    import numpy as np
    import soundfile as sf

    n = int(minutes * 60 * sr)
    t = np.arange(n, dtype=np.float32) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), sr,
             subtype="PCM_16")
    return path


def test_a_long_clip_is_opened_in_bounded_memory(tmp_path):
    """A 9.9-min, 19 MB WAV took 1.1 GB on the Predict page; the whole-clip spectrogram
    is now built in chunks (the full complex STFT alone was ~400 MB)."""
    import tracemalloc

    import numpy as np

    from ser.features import magnitude_stft, mel_power, mel_power_chunked
    from ser.inference import open_clip

    data = _long_wav(tmp_path / "long.wav", 9.9).read_bytes()
    tracemalloc.start()
    try:
        clip = open_clip(data, "long.wav")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert clip.duration_s > 590
    assert peak < 300e6, f"{peak / 1e6:.0f} MB"
    y = clip.y_model[: 22050 * 20]
    np.testing.assert_array_equal(mel_power_chunked(y, chunk_frames=100),
                                  mel_power(magnitude_stft(y)))


def test_the_clip_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    from ser.inference import open_clip
    from ser.settings import load_settings

    data = _long_wav(tmp_path / "long.wav", 3.0).read_bytes()
    t = time.time()
    with pytest.raises(AudioError, match="the limit is 2.0 min"):
        open_clip(data, "long.wav", max_seconds=120)
    assert time.time() - t < 1.0
    monkeypatch.setenv("SER_CONFIG", "/nonexistent/ser.toml")
    monkeypatch.setenv("SER_PUBLIC", "1")
    monkeypatch.delenv("SER_MAX_SECONDS", raising=False)
    assert load_settings().clip_limit == 120
    monkeypatch.setenv("SER_MAX_SECONDS", "30")
    assert load_settings().clip_limit == 30
    monkeypatch.setenv("SER_PUBLIC", "0")
    monkeypatch.delenv("SER_MAX_SECONDS")
    assert load_settings().clip_limit == 600


def test_public_predict_page_refuses_a_clip_over_its_limit(tmp_path, monkeypatch, demo_root):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SER_CONFIG", "/nonexistent/ser.toml")
    monkeypatch.setenv("SER_PUBLIC", "1")
    monkeypatch.setenv("SER_MAX_SECONDS", "60")
    monkeypatch.setenv("SER_MODELS_DIR", str(tmp_path / "models"))
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/predict.py")
    at.run()
    data = _long_wav(tmp_path / "long.wav", 1.5).read_bytes()
    at.file_uploader[0].set_value(("long.wav", data, "audio/wav")).run()
    assert not at.exception
    assert any("the limit is 1.0 min" in e.value for e in at.error)


@pytest.mark.slow
def test_the_cli_decodes_each_clip_once_for_all_models(tmp_path):
    """Item 7: with 27 models a 2·10⁹ Hz header took 135 s because every model decoded
    and resampled the clip again. Counted with the profiler on the real CLI."""
    from conftest import write_clip
    from predict_helpers import make_bundle

    zoo = tmp_path / "zoo"
    for i in range(3):
        make_bundle(zoo / f"m{i}" / "model.pt", seed=i)
    clips = [str(write_clip(tmp_path / f"c{i}.wav", 1.2)) for i in range(2)]
    code = ("import cProfile, pstats, sys\n"
            "from ser.cli import main\n"
            "prof = cProfile.Profile()\n"
            "code = prof.runcall(main, ['predict', sys.argv[1], *sys.argv[2:]])\n"
            "calls = {f[2]: v[1] for f, v in pstats.Stats(prof).stats.items()\n"
            "         if f[0].endswith('ser/audio.py')}\n"
            "print('EXIT', code, 'READS', calls.get('_read_bytes', 0))\n")
    out = subprocess.run([sys.executable, "-c", code, str(zoo), *clips], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    last = out.stdout.strip().splitlines()[-1]
    assert last == "EXIT 0 READS 2", out.stdout[-1500:] + out.stderr[-1500:]
