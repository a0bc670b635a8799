"""LeNet-5-like CNNs (Keras notebook seed): two wide-kernel convolutions with few maps."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ser import config
from ser.models.base import (
    SERModel,
    avg_pool_nd,
    conv_nd,
    flat_size,
    keras_init,
    make_activation,
    scaled,
)
from ser.models.registry import register


class _LeNet(SERModel):
    dim: ClassVar[int]

    def __init__(self, *, activation: str = "relu", width: float = 1.0, dropout: float = 0.25,
                 n_classes: int = config.N_CLASSES, fs1_dim: int = config.FS1_DIM,
                 n_mels: int = config.N_MELS, frames: int = config.FS2_FRAMES) -> None:
        super().__init__()
        self._check_common(activation=activation, width=width, dropout=dropout,
                           n_classes=n_classes, fs1_dim=fs1_dim, n_mels=n_mels, frames=frames)
        c1, c2 = scaled(6, width), scaled(16, width)
        # Unpadded 5-wide kernels and average-pool "subsampling", as in LeNet-5.
        self.features = nn.Sequential(
            conv_nd(self.dim, 1, c1, 5), make_activation(activation), avg_pool_nd(self.dim, 2),
            conv_nd(self.dim, c1, c2, 5), make_activation(activation), avg_pool_nd(self.dim, 2),
        )
        f1, f2 = scaled(120, width), scaled(84, width)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat_size(self.features, self.example_input()), f1),
            make_activation(activation), nn.Dropout(dropout),
            nn.Linear(f1, f2), make_activation(activation), nn.Dropout(dropout),
            nn.Linear(f2, n_classes),
        )
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for input of :attr:`input_space`."""
        self.check_input(x)
        return self.head(self.features(x))


_LENET_SUMMARY = (
    "The smallest convolutional trunk here: two unpadded 5-wide convolutions with only 6 "
    "and 16 feature maps, each followed by 2x average pooling, then three dense layers "
    "(120, 84, classes). Most of its parameters sit in the first dense layer, which reads "
    "the whole flattened map, so it depends on the exact input size and on position."
)


class LeNet1D(_LeNet):
    """LeNet-5-like 1D CNN on the 169-d FS1 vector."""

    dim = 1
    input_space = "fs1"
    display_name = "LeNet-5-like 1D CNN"
    family = "1D CNN"
    source = "Keras notebook seed"
    summary = _LENET_SUMMARY
    size_note = "Same size as LeNet-5 (6 and 16 maps; 120-84 dense); dropout added in the head."


class LeNet2D(_LeNet):
    """LeNet-5-like 2D CNN on the 128 x 216 log-mel spectrogram."""

    dim = 2
    input_space = "fs2"
    display_name = "LeNet-5-like 2D CNN"
    family = "2D CNN"
    source = "Keras notebook seed"
    summary = _LENET_SUMMARY
    size_note = ("Same size as LeNet-5 (6 and 16 maps; 120-84 dense); dropout added in the "
                 "head. The 16 x 29 x 51 map makes the first dense layer 2.8 M parameters.")


@register
def lenet1d(**kwargs: Any) -> LeNet1D:
    """LeNet-5-like 1D CNN on FS1 (see :class:`LeNet1D`)."""
    return LeNet1D(**kwargs)


@register
def lenet2d(**kwargs: Any) -> LeNet2D:
    """LeNet-5-like 2D CNN on FS2 (see :class:`LeNet2D`)."""
    return LeNet2D(**kwargs)
