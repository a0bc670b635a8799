"""The Keras notebook seed's "Custom" CNNs: wide 5-wide convolutions, four pooling stages."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ser import config
from ser.models.base import (
    SERModel,
    conv_nd,
    flat_size,
    keras_init,
    make_activation,
    max_pool_nd,
    scaled,
)
from ser.models.registry import register

#: Filters of the four convolution + pooling stages at the seed's size (widest first).
CUSTOM_FILTERS = (256, 256, 128, 64)
CUSTOM_FC = 32


class _Custom(SERModel):
    dim: ClassVar[int]
    channel_divisor: ClassVar[int]

    def __init__(self, *, activation: str = "relu", width: float = 1.0, dropout: float = 0.3,
                 n_classes: int = config.N_CLASSES, fs1_dim: int = config.FS1_DIM,
                 n_mels: int = config.N_MELS, frames: int = config.FS2_FRAMES) -> None:
        super().__init__()
        self._check_common(activation=activation, width=width, dropout=dropout,
                           n_classes=n_classes, fs1_dim=fs1_dim, n_mels=n_mels, frames=frames)
        layers: list[nn.Module] = []
        c_in = 1
        for stage, filters in enumerate(CUSTOM_FILTERS):
            c_out = scaled(filters // self.channel_divisor, width)
            layers += [conv_nd(self.dim, c_in, c_out, 5, padding=2), make_activation(activation),
                       max_pool_nd(self.dim, 5, stride=2, padding=2)]
            if stage == 2:
                # One dropout inside the trunk, before the narrowest stage.
                layers.append(nn.Dropout(dropout))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(self.features, self.example_input()), CUSTOM_FC),
            make_activation(activation), nn.Dropout(dropout),
            nn.Linear(CUSTOM_FC, n_classes),
        )
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for input of :attr:`input_space`."""
        self.check_input(x)
        return self.head(self.features(x))


_CUSTOM_SUMMARY = (
    "Wide first, narrow last: four 5-wide 'same' convolutions whose filter counts fall "
    "(256, 256, 128, 64 at the seed's size), each followed by an overlapping 5-wide, "
    "stride-2 max-pool, then a deliberately tiny 32-unit dense layer. The many filters "
    "at high resolution make it the most compute-hungry of the seed's models per layer."
)


class Custom1D(_Custom):
    """The seed's Custom 1D CNN on the 169-d FS1 vector."""

    dim = 1
    channel_divisor = 1
    input_space = "fs1"
    display_name = "Custom 1D CNN"
    family = "1D CNN"
    source = "Keras notebook seed"
    summary = _CUSTOM_SUMMARY
    size_note = "The seed's size (256-256-128-64 filters, 32-unit dense layer)."


class Custom2D(_Custom):
    """The seed's Custom 2D CNN on the 128 x 216 log-mel spectrogram."""

    dim = 2
    channel_divisor = 16
    input_space = "fs2"
    display_name = "Custom 2D CNN"
    family = "2D CNN"
    source = "Keras notebook seed"
    summary = _CUSTOM_SUMMARY
    size_note = ("Filters 1/16 of the seed's 256-256-128-64 (16-16-8-4): 5x5 kernels with 256 "
                 "maps at 64 x 108 would cost ~11 GMAC per clip. width=16 restores the full size.")


@register
def custom1d(**kwargs: Any) -> Custom1D:
    """The seed's Custom 1D CNN on FS1 (see :class:`Custom1D`)."""
    return Custom1D(**kwargs)


@register
def custom2d(**kwargs: Any) -> Custom2D:
    """The seed's Custom 2D CNN on FS2 (see :class:`Custom2D`)."""
    return Custom2D(**kwargs)
