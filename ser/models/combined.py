"""The PyTorch seed's combined model: a 1D path on FS1 and a 2D path on FS2, fused late."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ser import config
from ser.models.base import (
    SERModel,
    chain_receptive_field,
    make_activation,
    scaled,
    trunk_modules,
)
from ser.models.gn import GN1D_CHANNELS, GN2D_CHANNELS, GN2D_DIVISOR, GN_HIDDEN, GNTrunk
from ser.models.registry import register


class Combined(SERModel):
    """Two GroupNorm trunks in parallel; pooled features concatenated, then a LayerNorm head.

    ``forward(fs1, fs2)`` takes the 169-d vector ``(batch, 1, 169)`` and the spectrogram
    ``(batch, 1, 128, frames)``; the spectrogram may have any length ≥ 32 frames.
    """

    input_space = "fs1+fs2"
    variable_length = True
    display_name = "Combined 1D + 2D CNN"
    family = "1D+2D"
    source = "PyTorch seed"
    summary = (
        "Two views of the same clip: the GroupNorm 1D trunk reads the 169 clip-level "
        "statistics while the GroupNorm 2D trunk reads the spectrogram; each is globally "
        "pooled, the two feature vectors are concatenated, and a head of linear → LayerNorm → "
        "activation → dropout → linear fuses them. Late fusion lets each path keep its own "
        "inductive bias; LayerNorm evens out the scales of the two feature sets."
    )
    size_note = (f"1D path at the seed's 128-256-512; 2D path at 1/{GN2D_DIVISOR} of the seed's "
                 "32-64-512-1024 (as gn2d); 128-unit fused layer as in the seed. One dropout "
                 "rate is used throughout (the seed used 0.3 in the trunks, 0.5 in the head).")

    def __init__(self, *, activation: str = "relu", width: float = 1.0, dropout: float = 0.3,
                 n_classes: int = config.N_CLASSES, fs1_dim: int = config.FS1_DIM,
                 n_mels: int = config.N_MELS, frames: int = config.FS2_FRAMES) -> None:
        super().__init__()
        self._check_common(activation=activation, width=width, dropout=dropout,
                           n_classes=n_classes, fs1_dim=fs1_dim, n_mels=n_mels, frames=frames)
        self.path1d = GNTrunk(1, tuple(scaled(c, width) for c in GN1D_CHANNELS), activation,
                              dropout)
        self.path2d = GNTrunk(2, tuple(scaled(c // GN2D_DIVISOR, width) for c in GN2D_CHANNELS),
                              activation, dropout)
        hidden = scaled(GN_HIDDEN, width)
        self.head = nn.Sequential(
            nn.Linear(self.path1d.out_channels + self.path2d.out_channels, hidden),
            nn.LayerNorm(hidden), make_activation(activation), nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def receptive_field(self) -> dict[str, Any]:
        """``{"fs1": positions, "fs2": (mel bands, frames)}`` for the two trunks."""
        (rf1, _), = chain_receptive_field(trunk_modules(self.path1d), 1)
        (rf_f, _), (rf_t, _) = chain_receptive_field(trunk_modules(self.path2d), 2)
        return {"fs1": rf1, "fs2": (rf_f, rf_t)}

    def forward(self, fs1: torch.Tensor, fs2: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` from FS1 ``(batch, 1, 169)`` and FS2 spectrograms."""
        self._check_vector(fs1)
        self._check_frames(fs2)
        if fs1.shape[0] != fs2.shape[0]:
            raise ValueError(f"fs1 and fs2 batches differ: {fs1.shape[0]} vs {fs2.shape[0]}")
        return self.head(torch.cat([self.path1d(fs1), self.path2d(fs2)], dim=1))


@register
def combined(**kwargs: Any) -> Combined:
    """The PyTorch seed's two-path model on FS1 + FS2 (see :class:`Combined`)."""
    return Combined(**kwargs)
