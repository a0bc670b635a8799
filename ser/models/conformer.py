"""``serformer``: SER Studio's transformer-family model, a small Conformer trained from
scratch on the log-mel image.

Forward pass:

1. ser2d's residual 2D front end (`ser.models.residual.front_end`) turns the 128 × T
   spectrogram into one 128-d vector per group of four frames (54 steps for 216 frames),
   so attention works on a short sequence: cheap on a CPU at any clip length.
2. Two Conformer blocks (Gulati et al., 2020, "Conformer: Convolution-augmented Transformer
   for Speech Recognition"): half a feed-forward step, multi-head self-attention, a
   convolution module (pointwise convolution with a gated linear unit, a depthwise
   convolution over 15 steps, BatchNorm, pointwise convolution), another half feed-forward
   step, then LayerNorm. Attention relates any two moments of the utterance; the depthwise
   convolution carries local order, so no position table is needed and any length works.
3. Attentive statistics pooling and one linear layer, as in ser2d.

Self-attention is one leaf module (`SelfAttention`) with its own weights, so the layer
table counts its parameters and multiply-accumulates (projections plus the T × T products).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ser.models.base import make_activation, scaled
from ser.models.registry import register
from ser.models.residual import SER2D_ATTENTION, AttentiveStatsPool, FrontEndModel

SERFORMER_BLOCKS = 2
SERFORMER_HEADS = 4
SERFORMER_FF = 2  # feed-forward width / model width
SERFORMER_KERNEL = 15  # depthwise convolution, in sequence steps (≈ 1.4 s at 4 frames/step)
SERFORMER_DROPOUT = 0.1  # inside the blocks; the head uses the model's ``dropout``


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention over ``(batch, steps, dim)``."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.qkv_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_weight = nn.Parameter(torch.empty(dim, dim))
        self.out_bias = nn.Parameter(torch.zeros(dim))
        nn.init.xavier_uniform_(self.qkv_weight)
        nn.init.xavier_uniform_(self.out_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = F.linear(x, self.qkv_weight, self.qkv_bias)
        q, k, v = qkv.view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v,
                                           dropout_p=self.dropout if self.training else 0.0)
        return F.linear(y.transpose(1, 2).reshape(b, t, d), self.out_weight, self.out_bias)

    def macs_per_call(self, output: torch.Tensor) -> int:
        """Projections (4 · T · D²) plus the score and weighting products (2 · T² · D)."""
        t, d = output.shape[1], output.shape[2]
        return 4 * t * d * d + 2 * t * t * d


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mult * dim),
                                 make_activation(activation), nn.Dropout(dropout),
                                 nn.Linear(mult * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvModule(nn.Module):
    """LayerNorm, pointwise conv + GLU, depthwise conv, BatchNorm, activation, pointwise."""

    def __init__(self, dim: int, kernel: int, dropout: float, activation: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.net = nn.Sequential(
            nn.Conv1d(dim, 2 * dim, 1), nn.GLU(dim=1),
            nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim, bias=False),
            nn.BatchNorm1d(dim), make_activation(activation), nn.Conv1d(dim, dim, 1),
            nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x).transpose(1, 2)).transpose(1, 2)


class ConformerBlock(nn.Module):
    """½ feed-forward, self-attention, convolution, ½ feed-forward, LayerNorm; each step
    added to its input."""

    def __init__(self, dim: int, heads: int, activation: str) -> None:
        super().__init__()
        p = SERFORMER_DROPOUT
        self.ff1 = FeedForward(dim, SERFORMER_FF, p, activation)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, p)
        self.attn_drop = nn.Dropout(p)
        self.conv = ConvModule(dim, SERFORMER_KERNEL, p, activation)
        self.ff2 = FeedForward(dim, SERFORMER_FF, p, activation)
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_drop(self.attn(self.attn_norm(x)))
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x)


def _heads(dim: int) -> int:
    """The most heads (up to `SERFORMER_HEADS`) that divide ``dim``."""
    return next(h for h in range(SERFORMER_HEADS, 0, -1) if dim % h == 0)


class SERFormer(FrontEndModel):
    """ser2d's residual front end, two Conformer blocks, attentive statistics pooling."""

    family = "2D CNN + transformer"
    display_name = "SER Studio Conformer: residual CNN + self-attention"
    summary = (
        "The residual 2D front end of ser2d turns the spectrogram into one vector per "
        "group of four frames; two Conformer blocks then let every moment of the utterance "
        "attend to every other (multi-head self-attention) while a depthwise convolution "
        "keeps local order, and attentive statistics pooling summarises the clip. It is the "
        "transformer-family step the PyTorch write-up points to, sized to train on a CPU "
        "without pretrained weights."
    )
    size_note = ("Designed for this project: ser2d's 2D stages, then two Conformer blocks of "
                 "width 128 (4 heads, feed-forward ×2, depthwise kernel 15) at width 1; width "
                 "scales every stage.")

    def build_sequence(self, seq: int, *, width: float, dropout: float, n_classes: int,
                       activation: str) -> None:
        self.blocks = nn.Sequential(*(ConformerBlock(seq, _heads(seq), activation)
                                      for _ in range(SERFORMER_BLOCKS)))
        self.pool = AttentiveStatsPool(seq, scaled(SER2D_ATTENTION, width))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * seq, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for spectrograms ``(batch, 1, 128, frames)``."""
        x = self.blocks(self.frame_vectors(x).transpose(1, 2))  # (batch, steps, seq)
        return self.head(self.pool(x.transpose(1, 2)))


@register
def serformer(**kwargs: Any) -> SERFormer:
    """SER Studio's small Conformer on FS2 (see :class:`SERFormer`)."""
    return SERFormer(**kwargs)
