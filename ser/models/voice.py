"""Heads on the pretrained voice encoder's statistics (the ``voice`` space, `ser.voice`).

The encoder is frozen and runs while features are extracted; these models are the small
read-outs trained on its 1,792 values per clip: ``voicelin`` a linear layer (a regularised
multinomial logistic regression), ``voicenet`` one hidden layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ser import config
from ser.models.base import SERModel, make_activation, scaled
from ser.models.registry import register
from ser.voice import VOICE_DIM

_ENCODER_NOTE = ("The frozen voice encoder in front of it (a three-layer LSTM of 256 units, "
                 "1.4 M parameters, pretrained for speaker verification) is not counted: it "
                 "is part of the feature extraction and is never trained here.")


class _VoiceHead(SERModel):
    input_space = "voice"
    family = "Pretrained encoder + head"
    source = "SER Studio"

    def __init__(self, *, activation: str = "relu", width: float = 1.0, dropout: float = 0.5,
                 n_classes: int = config.N_CLASSES, fs1_dim: int = config.FS1_DIM,
                 n_mels: int = config.N_MELS, frames: int = config.FS2_FRAMES) -> None:
        super().__init__()
        self._check_common(activation=activation, width=width, dropout=dropout,
                           n_classes=n_classes, fs1_dim=fs1_dim, n_mels=n_mels, frames=frames)
        self.head = self._head(activation, width, dropout, n_classes)

    def _head(self, activation: str, width: float, dropout: float, n_classes: int
              ) -> nn.Module:
        raise NotImplementedError

    def receptive_field(self) -> dict[str, Any]:
        """The whole clip: the encoder's statistics are taken over every frame."""
        return {"voice": "the whole clip (the encoder's layers are averaged over time)"}

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or tuple(x.shape[1:]) != (1, VOICE_DIM):
            raise ValueError(f"{type(self).__name__} takes voice vectors (batch, 1, "
                             f"{VOICE_DIM}), got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` from standardised voice vectors."""
        self.check_input(x)
        return self.head(x)


class VoiceLinear(_VoiceHead):
    """Dropout, then one linear layer from the 1,792 voice statistics to the emotions."""

    display_name = "Voice encoder + linear read-out"
    summary = ("A linear read-out of a pretrained speaker encoder: the clip passes a frozen "
               "three-layer LSTM trained to tell speakers apart, each layer's "
               "outputs are averaged (mean and spread over time), and one linear layer maps "
               "those 1,792 numbers to the emotions. Nothing about the encoder changes; "
               "what it learned about voices, from speech recorded outside any emotion "
               "corpus, is what the read-out uses.")
    size_note = "10.8 k trainable parameters (1,792 × 6 + 6). " + _ENCODER_NOTE
    linear_readout = True

    def _head(self, activation: str, width: float, dropout: float, n_classes: int
              ) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(VOICE_DIM, n_classes))


class VoiceNet(_VoiceHead):
    """Dropout, a hidden layer of 256 × width units, dropout, the emotions."""

    display_name = "Voice encoder + MLP"
    summary = ("The same frozen speaker encoder as the linear read-out, with one hidden "
               "layer (256 units at width 1) between its 1,792 statistics and the emotions, "
               "so the read-out can combine them non-linearly.")
    size_note = "460 k trainable parameters at width 1. " + _ENCODER_NOTE

    def _head(self, activation: str, width: float, dropout: float, n_classes: int
              ) -> nn.Module:
        hidden = scaled(256, width)
        return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(VOICE_DIM, hidden),
                             make_activation(activation), nn.Dropout(dropout),
                             nn.Linear(hidden, n_classes))


@register
def voicelin(**kwargs: Any) -> VoiceLinear:
    """Linear read-out of the voice encoder (see :class:`VoiceLinear`)."""
    return VoiceLinear(**kwargs)


@register
def voicenet(**kwargs: Any) -> VoiceNet:
    """One-hidden-layer read-out of the voice encoder (see :class:`VoiceNet`)."""
    return VoiceNet(**kwargs)
