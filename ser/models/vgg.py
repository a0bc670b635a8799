"""VGG16-like CNNs (Keras notebook seed): five stages of stacked 3-wide convolutions."""

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

#: VGG16's pattern: (convolutions per stage, channels per stage), each stage ends in a 2x pool.
VGG16_STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VGG16_FC = 4096


class _VGG(SERModel):
    dim: ClassVar[int]
    #: Default channels = VGG16's divided by this (fits the CPU budget, see size_note).
    channel_divisor: ClassVar[int]

    def __init__(self, *, activation: str = "relu", width: float = 1.0, dropout: float = 0.5,
                 n_classes: int = config.N_CLASSES, fs1_dim: int = config.FS1_DIM,
                 n_mels: int = config.N_MELS, frames: int = config.FS2_FRAMES) -> None:
        super().__init__()
        self._check_common(activation=activation, width=width, dropout=dropout,
                           n_classes=n_classes, fs1_dim=fs1_dim, n_mels=n_mels, frames=frames)
        layers: list[nn.Module] = []
        c_in = 1
        for n_convs, channels in VGG16_STAGES:
            c_out = scaled(channels // self.channel_divisor, width)
            for _ in range(n_convs):
                layers += [conv_nd(self.dim, c_in, c_out, 3, padding=1),
                           make_activation(activation)]
                c_in = c_out
            layers.append(max_pool_nd(self.dim, 2))
        self.features = nn.Sequential(*layers)
        fc = scaled(VGG16_FC // self.channel_divisor, width)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(self.features, self.example_input()), fc),
            make_activation(activation), nn.Dropout(dropout),
            nn.Linear(fc, fc), make_activation(activation), nn.Dropout(dropout),
            nn.Linear(fc, n_classes),
        )
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for input of :attr:`input_space`."""
        self.check_input(x)
        return self.head(self.features(x))


_VGG_SUMMARY = (
    "Depth from repetition: thirteen small 3-wide convolutions in five stages (2, 2, 3, 3, 3), "
    "each stage closed by a 2x max-pool, so the receptive field grows by stacking rather "
    "than by large kernels. No normalisation layers, as in VGG16; a two-layer dense head "
    "with dropout reads the flattened final map, which fixes the input size."
)


class VGG1D(_VGG):
    """VGG16-like 1D CNN on the 169-d FS1 vector."""

    dim = 1
    channel_divisor = 4
    input_space = "fs1"
    display_name = "VGG16-like 1D CNN"
    family = "1D CNN"
    source = "Keras notebook seed"
    summary = _VGG_SUMMARY + " Here the 169 statistics shrink to 5 positions after the stages."
    size_note = ("Channels 1/4 of VGG16's 64-128-256-512-512 (16-32-64-128-128) and dense "
                 "layers 1024 instead of 4096; width=4 restores the full size.")


class VGG2D(_VGG):
    """VGG16-like 2D CNN on the 128 x 216 log-mel spectrogram."""

    dim = 2
    channel_divisor = 8
    input_space = "fs2"
    display_name = "VGG16-like 2D CNN"
    family = "2D CNN"
    source = "Keras notebook seed"
    summary = _VGG_SUMMARY + " The 128 x 216 spectrogram ends as a 4 x 6 map."
    size_note = ("Channels 1/8 of VGG16's 64-128-256-512-512 (8-16-32-64-64) and dense layers "
                 "512 instead of 4096, because full-resolution 3x3 stacks dominate CPU time; "
                 "width=8 restores the full size.")


@register
def vgg1d(**kwargs: Any) -> VGG1D:
    """VGG16-like 1D CNN on FS1 (see :class:`VGG1D`)."""
    return VGG1D(**kwargs)


@register
def vgg2d(**kwargs: Any) -> VGG2D:
    """VGG16-like 2D CNN on FS2 (see :class:`VGG2D`)."""
    return VGG2D(**kwargs)
