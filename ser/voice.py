"""The voice space: statistics of a pretrained speaker encoder's layers, one vector per clip.

The encoder is the GE2E speaker-verification network published with Resemblyzer
(Apache-2.0; a three-layer LSTM of 256 units over 40 mel bands, trained to tell speakers
apart with the generalised end-to-end loss of Wan et al., 2018). Its weights ship with SER
Studio in float16 (``ser/assets/voice_encoder.pt``, 2.9 MB, licence beside it), so nothing
is downloaded. The network is frozen: SER Studio only
trains small heads on what it computes.

What a clip becomes (`voice_vector`, 1,792 values):

* the clip is resampled to 16 kHz and scaled to an RMS of -30 dBFS (the encoder's input level);
* 40-band power mel spectrogram, 25-ms windows every 10 ms (the encoder's front end);
* the encoder runs over the whole clip: the speaker embedding (256 values, unit length)
  comes first, then each LSTM layer's outputs summarised by their mean and standard
  deviation over time (3 layers × 2 × 256).

The lower layers keep how the voice moves (pitch, energy, rate); the embedding mostly keeps
who is speaking. A linear read-out of the layer statistics is what the ``voicenet`` models
learn (see `ser.models.voice`).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

#: Sample rate, FFT size, hop and mel bands the encoder was trained with.
VOICE_SR = 16000
VOICE_N_FFT = 400
VOICE_HOP = 160
VOICE_MELS = 40
HIDDEN = 256
LAYERS = 3
#: Length of a voice vector: the embedding, then mean and std of each layer's outputs.
VOICE_DIM = LAYERS * 2 * HIDDEN + HIDDEN
#: The encoder's input level (RMS, dBFS).
TARGET_DBFS = -30.0
WEIGHTS = Path(__file__).resolve().parent / "assets" / "voice_encoder.pt"

_LOCK = threading.Lock()


class VoiceEncoderError(RuntimeError):
    """The encoder's weights file is missing or not the expected network."""


class VoiceEncoder(torch.nn.Module):
    """The frozen encoder: one LSTM per layer (so every layer's outputs can be read)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.LSTM(VOICE_MELS if i == 0 else HIDDEN, HIDDEN, 1, batch_first=True)
            for i in range(LAYERS))
        self.linear = torch.nn.Linear(HIDDEN, HIDDEN)

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel``: (batch, frames, 40) power mel → (batch, VOICE_DIM)."""
        parts, h = [], mel
        for lstm in self.layers:
            h, (last, _) = lstm(h)
            parts += [h.mean(1), h.std(1, unbiased=False)]
        emb = torch.relu(self.linear(last[-1]))
        emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-8)
        return torch.cat([emb] + parts, dim=1)


def encoder_macs(seconds: float) -> int:
    """Multiply-adds the frozen encoder spends on ``seconds`` of audio (LSTM gates over every
    10-ms frame, then the embedding layer); the mel front end is not counted."""
    frames = 1 + int(seconds * VOICE_SR) // VOICE_HOP
    per_frame = sum(4 * HIDDEN * ((VOICE_MELS if i == 0 else HIDDEN) + HIDDEN)
                    for i in range(LAYERS))
    return frames * per_frame + HIDDEN * HIDDEN


def load_encoder(path: str | Path = WEIGHTS) -> VoiceEncoder:
    """Build the encoder from its float16 weights (``torch.load(weights_only=True)``)."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise VoiceEncoderError(f"The voice encoder's weights are missing ({path}); reinstall "
                                "SER Studio from a full clone.") from None
    except Exception as err:  # noqa: BLE001 — any unreadable file gets one message
        raise VoiceEncoderError(f"The voice encoder's weights ({path}) cannot be read: "
                                f"{err}") from None
    model = VoiceEncoder()
    mapped = {}
    for i in range(LAYERS):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            mapped[f"layers.{i}.{name}_l0"] = state.get(f"lstm.{name}_l{i}")
    mapped["linear.weight"] = state.get("linear.weight")
    mapped["linear.bias"] = state.get("linear.bias")
    missing = [k for k, v in mapped.items() if not isinstance(v, torch.Tensor)]
    if missing:
        raise VoiceEncoderError(f"{path} is not the voice encoder (missing {missing[0]}).")
    try:
        model.load_state_dict({k: v.float() for k, v in mapped.items()})
    except RuntimeError as err:
        raise VoiceEncoderError(f"{path} is not the voice encoder: {err}") from None
    return model.eval()


@lru_cache(maxsize=1)
def _encoder() -> VoiceEncoder:
    return load_encoder()


@lru_cache(maxsize=2)
def _mel_basis(sr: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=VOICE_N_FFT, n_mels=VOICE_MELS).astype(np.float32)


def voice_mel(y: np.ndarray, sr: int) -> np.ndarray:
    """(frames, 40) power mel of ``y`` at 16 kHz and -30 dBFS RMS, as the encoder expects."""
    import librosa

    from ser.audio import resample

    y = np.asarray(y, dtype=np.float32)
    if sr != VOICE_SR:
        y = resample(y, sr, VOICE_SR)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
    if rms > 1e-6:
        y = y * np.float32(10 ** (TARGET_DBFS / 20) / rms)
    S = np.abs(librosa.stft(y, n_fft=VOICE_N_FFT, hop_length=VOICE_HOP)) ** 2
    return (_mel_basis(VOICE_SR) @ S).T.astype(np.float32)


def voice_vector(y: np.ndarray, sr: int) -> np.ndarray:
    """The clip's voice vector (VOICE_DIM float32 values; see the module docstring)."""
    mel = torch.from_numpy(voice_mel(y, sr))[None]
    with _LOCK:  # one encoder per process; LSTM calls are not re-entrant across threads
        out = _encoder()(mel)
    return out[0].numpy().astype(np.float32)
