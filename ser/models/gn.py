"""GroupNorm CNNs (PyTorch seed): conv blocks with GroupNorm, then global average pooling."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ser import config
from ser.models.base import SERModel, conv_nd, group_norm, make_activation, max_pool_nd, scaled
from ser.models.registry import register

#: The seed's block widths.
GN1D_CHANNELS = (128, 256, 512)
GN2D_CHANNELS = (32, 64, 512, 1024)
#: Default 2D widths are the seed's divided by this (see GN2D.size_note).
GN2D_DIVISOR = 8
GN_HIDDEN = 128


class GNTrunk(nn.Module):
    """Blocks of conv → GroupNorm → activation → 2x max-pool → dropout, then global mean.

    Output is ``(batch, channels[-1])`` whatever the input length, which is what lets the
    2D version, and the combined model's 2D path, take spectrograms of any length.
    """

    def __init__(self, dim: int, channels: tuple[int, ...], activation: str,
                 dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in channels:
            # ceil_mode keeps odd or short time axes from losing their last frames.
            layers += [conv_nd(dim, c_in, c_out, 3, padding=1), group_norm(c_out),
                       make_activation(activation), max_pool_nd(dim, 2, ceil_mode=True),
                       nn.Dropout(dropout)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(batch, out_channels)``."""
        return self.features(x).flatten(2).mean(-1)


def gn_head(in_features: int, hidden: int, activation: str, dropout: float,
            n_classes: int) -> nn.Sequential:
    """Dense head of the GroupNorm CNNs: linear → activation → dropout → linear."""
    return nn.Sequential(nn.Linear(in_features, hidden), make_activation(activation),
                         nn.Dropout(dropout), nn.Linear(hidden, n_classes))


class _GNModel(SERModel):
    dim: ClassVar[int]
    seed_channels: ClassVar[tuple[int, ...]]
    channel_divisor: ClassVar[int]

    def __init__(self, *, activation: str = "relu", width: float = 1.0, dropout: float = 0.3,
                 n_classes: int = config.N_CLASSES, fs1_dim: int = config.FS1_DIM,
                 n_mels: int = config.N_MELS, frames: int = config.FS2_FRAMES) -> None:
        super().__init__()
        self._check_common(activation=activation, width=width, dropout=dropout,
                           n_classes=n_classes, fs1_dim=fs1_dim, n_mels=n_mels, frames=frames)
        channels = tuple(scaled(c // self.channel_divisor, width) for c in self.seed_channels)
        self.trunk = GNTrunk(self.dim, channels, activation, dropout)
        self.head = gn_head(self.trunk.out_channels, scaled(GN_HIDDEN, width), activation,
                            dropout, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for input of :attr:`input_space`."""
        self.check_input(x)
        return self.head(self.trunk(x))


_GN_SUMMARY = (
    "Each block is one 3-wide convolution, GroupNorm, activation, a 2x max-pool and "
    "dropout; channels widen sharply in the later blocks. GroupNorm normalises per example, "
    "so behaviour does not depend on batch size, and global average pooling replaces the "
    "flatten, so the head has few parameters and the trunk is length-agnostic."
)


class GN1D(_GNModel):
    """The PyTorch seed's 1D CNN on the 169-d FS1 vector (3 GroupNorm blocks)."""

    dim = 1
    seed_channels = GN1D_CHANNELS
    channel_divisor = 1
    input_space = "fs1"
    display_name = "GroupNorm 1D CNN"
    family = "1D CNN"
    source = "PyTorch seed"
    summary = _GN_SUMMARY + " Three blocks of 128, 256 and 512 filters."
    size_note = ("The seed's size: 128-256-512 filters; GroupNorm with up to 8 groups and a "
                 "128-unit hidden layer.")


class GN2D(_GNModel):
    """The PyTorch seed's 2D CNN on the log-mel spectrogram (4 GroupNorm blocks)."""

    dim = 2
    seed_channels = GN2D_CHANNELS
    channel_divisor = GN2D_DIVISOR
    input_space = "fs2"
    variable_length = True
    display_name = "GroupNorm 2D CNN"
    family = "2D CNN"
    source = "PyTorch seed"
    summary = (_GN_SUMMARY + " Four blocks (32, 64, 512, 1024 filters at the seed's size); the "
               "seed's best model on CREMA-D.")
    size_note = (f"Channels 1/{GN2D_DIVISOR} of the seed's 32-64-512-1024 (4-8-64-128): the "
                 "512- and 1024-filter 3x3 blocks alone cost ~2.5 GMAC per clip at 128 x 216. "
                 f"width={GN2D_DIVISOR} restores the full size.")


@register
def gn1d(**kwargs: Any) -> GN1D:
    """The PyTorch seed's GroupNorm 1D CNN on FS1 (see :class:`GN1D`)."""
    return GN1D(**kwargs)


@register
def gn2d(**kwargs: Any) -> GN2D:
    """The PyTorch seed's GroupNorm 2D CNN on FS2 (see :class:`GN2D`)."""
    return GN2D(**kwargs)
