"""AlexNet-like CNNs (Keras notebook seed): a strided 11-wide first layer, five convolutions."""

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

#: AlexNet's five convolutions: (channels, kernel, stride, padding, max-pool after).
ALEXNET_CONVS = ((96, 11, 4, 2, True), (256, 5, 1, 2, True), (384, 3, 1, 1, False),
                 (384, 3, 1, 1, False), (256, 3, 1, 1, True))
ALEXNET_FC = 4096


class _AlexNet(SERModel):
    dim: ClassVar[int]
    channel_divisor: ClassVar[int] = 4

    def __init__(self, *, activation: str = "relu", width: float = 1.0, dropout: float = 0.5,
                 n_classes: int = config.N_CLASSES, fs1_dim: int = config.FS1_DIM,
                 n_mels: int = config.N_MELS, frames: int = config.FS2_FRAMES) -> None:
        super().__init__()
        self._check_common(activation=activation, width=width, dropout=dropout,
                           n_classes=n_classes, fs1_dim=fs1_dim, n_mels=n_mels, frames=frames)
        layers: list[nn.Module] = []
        c_in = 1
        for channels, kernel, stride, padding, pool in ALEXNET_CONVS:
            c_out = scaled(channels // self.channel_divisor, width)
            layers += [conv_nd(self.dim, c_in, c_out, kernel, stride=stride, padding=padding),
                       make_activation(activation)]
            if pool:
                # Overlapping 3-wide, stride-2 pooling, as AlexNet used.
                layers.append(max_pool_nd(self.dim, 3, stride=2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        fc = scaled(ALEXNET_FC // self.channel_divisor, width)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(flat_size(self.features, self.example_input()), fc),
            make_activation(activation), nn.Dropout(dropout),
            nn.Linear(fc, fc), make_activation(activation),
            nn.Linear(fc, n_classes),
        )
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for input of :attr:`input_space`."""
        self.check_input(x)
        return self.head(self.features(x))


_ALEXNET_SUMMARY = (
    "Cheap early, wide late: an 11-wide first convolution with stride 4 cuts the input "
    "resolution 4x at once, then a 5-wide and three 3-wide convolutions with overlapping "
    "3/2 max-pools. Its regularisation is heavy dropout (0.5) before both large dense "
    "layers of the head rather than normalisation."
)


class AlexNet1D(_AlexNet):
    """AlexNet-like 1D CNN on the 169-d FS1 vector."""

    dim = 1
    input_space = "fs1"
    display_name = "AlexNet-like 1D CNN"
    family = "1D CNN"
    source = "Keras notebook seed"
    summary = _ALEXNET_SUMMARY
    size_note = ("Channels 1/4 of AlexNet's 96-256-384-384-256 (24-64-96-96-64) and dense layers "
                 "1024 instead of 4096; width=4 restores the full size.")


class AlexNet2D(_AlexNet):
    """AlexNet-like 2D CNN on the 128 x 216 log-mel spectrogram."""

    dim = 2
    input_space = "fs2"
    display_name = "AlexNet-like 2D CNN"
    family = "2D CNN"
    source = "Keras notebook seed"
    summary = _ALEXNET_SUMMARY
    size_note = ("Channels 1/4 of AlexNet's 96-256-384-384-256 (24-64-96-96-64) and dense layers "
                 "1024 instead of 4096; width=4 restores the full size.")


@register
def alexnet1d(**kwargs: Any) -> AlexNet1D:
    """AlexNet-like 1D CNN on FS1 (see :class:`AlexNet1D`)."""
    return AlexNet1D(**kwargs)


@register
def alexnet2d(**kwargs: Any) -> AlexNet2D:
    """AlexNet-like 2D CNN on FS2 (see :class:`AlexNet2D`)."""
    return AlexNet2D(**kwargs)
