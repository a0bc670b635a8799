"""Helpers shared by the Predict-chain tests: tiny real bundles and real (synthetic) speech.

Speech comes from the repo's own voice synthesiser (ser.corpora.demo), which Silero VAD
rates as speech (see tests/test_segments.py); silence between utterances is low room
noise at -60 dBFS.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def make_bundle(path: Path, *, arch: str = "lenet2d", name: str | None = None,
                calibration: dict | None = None, seed: int = 0, half: bool = True,
                speaker_norm: bool = False) -> Path:
    """An untrained but complete bundle (identity normalisation), as shipped (float16)."""
    import torch

    from ser import config
    from ser.bundle import save_bundle
    from ser.card import Card
    from ser.models import create_model
    from ser.recipe import TrainConfig

    torch.manual_seed(seed)
    model = create_model(arch, width=0.25) if arch.endswith("2d") else create_model(arch)
    with torch.no_grad():  # some layers start at zero: give the untrained model opinions
        for p in model.parameters():
            p.add_(0.03 * torch.randn_like(p))
    space = "fs2" if arch.endswith("2d") else "voice" if arch.startswith("voice") else "fs1"
    dim = {"fs2": config.N_MELS, "fs1": config.FS1_DIM, "voice": 1792}[space]
    card = Card(name=name or path.parent.name, arch=arch, input_space=space,
                model_kwargs={"width": 0.25} if space == "fs2" else {},
                normalisation={space: {"mean": np.zeros(dim).tolist(),
                                       "std": np.ones(dim).tolist()}},
                split={"protocol": "speaker", "protocol_name": "speaker-independent",
                       "counts": {"test": 10}},
                data={"corpus": "demo", "synthetic": True},
                training=TrainConfig(arch=arch, speaker_norm="speaker" if speaker_norm
                                     else "none"),
                calibration=calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_bundle(path, model, card, half=half)


def voice_set(tmp_path: Path, monkeypatch, spk: str = "tiny.spk", plain: str = "tiny.plain",
              spk_arch: str = "lenet2d") -> Path:
    """A models folder with a speaker-normalised bundle ``spk`` and a plain one ``plain``,
    a default.json whose voice set is both, used by the app (profiles in ``tmp_path``)."""
    import json

    d = tmp_path / "models"
    make_bundle(d / spk / "model.pt", arch=spk_arch, name=spk, speaker_norm=True)
    make_bundle(d / plain / "model.pt", name=plain, seed=2)
    (d / "default.json").write_text(json.dumps({
        "models": [plain], "why": "the plain model",
        "voice": {"models": [spk, plain], "why": "both"}}))
    monkeypatch.setenv("SER_MODELS_DIR", str(d))
    monkeypatch.setenv("SER_PROFILES_DIR", str(tmp_path / "profiles"))
    return d


def utterances(dest: Path, n: int = 6) -> list[np.ndarray]:
    """``n`` fluent synthetic utterances at 16 kHz, leading/trailing silence trimmed."""
    from ser.corpora import demo

    root = demo.generate(dest, n_speakers=2, sentences=("TIE", "ITH", "IEO"), seed=0, sr=SR)
    out = []
    for path in sorted(root.glob("*.wav")):
        y, _ = sf.read(path, dtype="float32")
        active = _active(y)
        if _longest_pause(active) > 12:  # keep utterances without long internal pauses
            continue
        on = np.flatnonzero(active)
        out.append(y[on[0] * 160:(on[-1] + 1) * 160])
        if len(out) == n:
            break
    assert len(out) == n, "the synthesiser gave too few fluent utterances"
    return out


def _active(y: np.ndarray) -> np.ndarray:
    n = len(y) // 160
    e = np.mean(y[: n * 160].reshape(n, 160).astype(np.float64) ** 2, axis=1)
    return 10 * np.log10(e + 1e-12) > -45.0


def _longest_pause(active: np.ndarray) -> int:
    on = np.flatnonzero(active)
    longest = run = 0
    for a in active[on[0]:on[-1] + 1]:
        run = 0 if a else run + 1
        longest = max(longest, run)
    return longest


def floor(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(round(seconds * SR))) * 10 ** (-60 / 20)).astype(np.float32)


def place(parts: list) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Concatenate utterances and pauses (floats, seconds); audio and true speech spans."""
    out, truth, t = [], [], 0.0
    for i, part in enumerate(parts):
        if isinstance(part, float):
            part = floor(part, seed=i)
        else:
            truth.append((t, t + len(part) / SR))
        out.append(part)
        t += len(part) / SR
    return np.concatenate(out), truth


def wav(y: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV")
    return buf.getvalue()


def clip_and_takes(folder: Path, speech: list[np.ndarray]) -> tuple[Path, list[str]]:
    """A clip of utterance 0 and three takes (utterances 1–3) written as WAV files in
    ``folder``; returns the clip's path and the ``--voice`` arguments naming the takes."""
    clip = folder / "clip.wav"
    clip.write_bytes(wav(place([0.3, speech[0], 0.3])[0]))
    args = []
    for i in (1, 2, 3):
        take = folder / f"take{i}.wav"
        take.write_bytes(wav(place([0.3, speech[i], 0.3])[0]))
        args += ["--voice", str(take)]
    return clip, args
