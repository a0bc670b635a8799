"""Building blocks shared by the model families: activations, channel scaling, the base class.

Every model in the registry subclasses :class:`SERModel`, which carries the metadata the
registry, the describe tables and the app read (input space, display name, provenance)
and validates the common keyword arguments in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ser import config

ACTIVATIONS: tuple[str, ...] = ("relu", "silu", "elu")

#: Shortest spectrogram (frames) a global-pooling 2D model is documented to accept.
MIN_FRAMES = config.FS2_MIN_FRAMES
#: Allowed range (inclusive) of every numeric keyword argument the models share. The
#: trainer and the bundle loader both enforce it, so a card cannot ask for a network
#: larger than any SER Studio would train.
KWARG_LIMITS: dict[str, tuple[float, float]] = {
    "width": (0.05, 4.0), "dropout": (0.0, 0.99), "n_classes": (2, 64),
    "fs1_dim": (8, 4096), "n_mels": (16, 512), "frames": (MIN_FRAMES, 4096)}
#: The seeds' input sizes (FS1 length, mel bands, FS2 frames); other sizes are model kwargs.
DEFAULT_DIMS = {"fs1_dim": config.FS1_DIM, "n_mels": config.N_MELS, "frames": config.FS2_FRAMES}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module for ``name`` (one of :data:`ACTIVATIONS`).

    A new instance per call keeps the describe table one row per use and lets forward
    hooks see each call separately.
    """
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "silu":
        return nn.SiLU(inplace=True)
    if name == "elu":
        return nn.ELU(inplace=True)
    raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {name!r}")


def conv_nd(dim: int, *args: Any, **kwargs: Any) -> nn.Module:
    """``nn.Conv1d`` (``dim=1``) or ``nn.Conv2d`` (``dim=2``) with the given arguments."""
    return (nn.Conv1d if dim == 1 else nn.Conv2d)(*args, **kwargs)


def max_pool_nd(dim: int, *args: Any, **kwargs: Any) -> nn.Module:
    """``nn.MaxPool1d`` or ``nn.MaxPool2d``."""
    return (nn.MaxPool1d if dim == 1 else nn.MaxPool2d)(*args, **kwargs)


def avg_pool_nd(dim: int, *args: Any, **kwargs: Any) -> nn.Module:
    """``nn.AvgPool1d`` or ``nn.AvgPool2d``."""
    return (nn.AvgPool1d if dim == 1 else nn.AvgPool2d)(*args, **kwargs)


def keras_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every convolution and dense layer.

    These are Keras's defaults, so the models ported from the Keras notebook start from
    the same distribution the seed trained from (PyTorch's default is smaller).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.modules.conv._ConvNd, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


@torch.no_grad()
def flat_size(features: nn.Module, example: torch.Tensor) -> int:
    """Number of values per example that ``features`` outputs (to size a dense head)."""
    was_training = features.training
    features.eval()
    out = features(example[:1])
    features.train(was_training)
    return int(out[0].numel())


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels`` multiplied by ``width``, rounded, at least 1."""
    return max(1, round(channels * width))


def norm_groups(channels: int, max_groups: int = 8) -> int:
    """Largest divisor of ``channels`` that is at most ``max_groups`` (GroupNorm groups)."""
    for groups in range(min(max_groups, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups, so any width multiplier yields a valid layer."""
    return nn.GroupNorm(norm_groups(channels), channels)


def _per_axis(value: int | tuple[int, ...], n_axes: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple) else (value,) * n_axes


def chain_receptive_field(modules: list[nn.Module], n_axes: int,
                          start: tuple[tuple[int, int], ...] | None = None
                          ) -> tuple[tuple[int, int], ...]:
    """Receptive field and jump per axis after a chain of convolutions and pools.

    Parameters
    ----------
    modules
        Convolution / pooling modules in the order the signal passes them; others are
        skipped. Each must act on the last ``n_axes`` axes.
    n_axes
        1 for sequences, 2 for spectrograms (frequency, time).
    start
        ``((rf, jump), ...)`` per axis to continue from; ``((1, 1), ...)`` by default.

    Returns
    -------
    tuple
        ``((rf, jump), ...)`` per axis, in input samples / bins / frames.
    """
    state = list(start or ((1, 1),) * n_axes)
    for module in modules:
        if not isinstance(module, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd,
                                   nn.modules.pooling._AvgPoolNd)):
            continue
        kernel = _per_axis(module.kernel_size, n_axes)
        stride = _per_axis(module.stride, n_axes)
        dilation = _per_axis(getattr(module, "dilation", 1), n_axes)
        for axis in range(n_axes):
            rf, jump = state[axis]
            state[axis] = (rf + (kernel[axis] - 1) * dilation[axis] * jump, jump * stride[axis])
    return tuple(state)


def trunk_modules(module: nn.Module) -> list[nn.Module]:
    """Modules of ``module`` under a child named ``features``, minus residual shortcuts."""
    return [m for name, m in module.named_modules()
            if "features" in name.split(".") and "shortcut" not in name.split(".")]


def check_common_kwargs(*, activation: str, width: float, dropout: float, n_classes: int,
                        fs1_dim: int = config.FS1_DIM, n_mels: int = config.N_MELS,
                        frames: int = config.FS2_FRAMES) -> None:
    """``ValueError`` naming the first keyword argument outside :data:`KWARG_LIMITS`."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    lo, hi = KWARG_LIMITS["width"]
    if not _is_number(width) or not width > 0:
        raise ValueError(f"width must be a positive multiplier, got {width!r}")
    if not lo <= width <= hi:
        raise ValueError(f"width must be a multiplier in [{lo}, {hi}], got {width!r}")
    lo, hi = KWARG_LIMITS["dropout"]
    if not _is_number(dropout) or not 0.0 <= dropout < 1.0 or dropout > hi:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    lo, hi = KWARG_LIMITS["n_classes"]
    if not _is_number(n_classes) or int(n_classes) != n_classes or n_classes < lo:
        raise ValueError(f"n_classes must be an integer ≥ 2, got {n_classes!r}")
    if n_classes > hi:
        raise ValueError(f"n_classes must be at most {hi}, got {n_classes!r}")
    for name, value in (("fs1_dim", fs1_dim), ("n_mels", n_mels), ("frames", frames)):
        lo, hi = KWARG_LIMITS[name]
        if not _is_number(value) or int(value) != value or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")


def _is_number(x: Any) -> bool:
    import math

    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class SERModel(nn.Module):
    """Base class of every registered model.

    Subclasses set the class attributes below and call :meth:`_check_common` with their
    keyword arguments. ``hparams`` keeps the resolved keyword arguments so a bundle can
    rebuild the exact model with ``create_model(name, **model.hparams)``.
    """

    #: "fs1" (169-d vector), "fs2" (log-mel spectrogram), "fs1+fs2" (both) or "voice" (the
    #: pretrained voice encoder's 1,792-d statistics, `ser.voice`).
    input_space: ClassVar[str] = "fs2"
    display_name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    source: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    size_note: ClassVar[str] = ""
    #: True when the 2D input may have any number of frames ≥ MIN_FRAMES.
    variable_length: ClassVar[bool] = False
    #: True when the model is one linear layer on its (flattened) input, so its weights can
    #: be solved in one step (`ser.training.fit_readout`, the ``readout_l2`` option).
    linear_readout: ClassVar[bool] = False

    hparams: dict[str, Any]

    def _check_common(self, *, activation: str, width: float, dropout: float,
                      n_classes: int, fs1_dim: int = config.FS1_DIM,
                      n_mels: int = config.N_MELS, frames: int = config.FS2_FRAMES) -> None:
        check_common_kwargs(activation=activation, width=width, dropout=dropout,
                            n_classes=n_classes, fs1_dim=fs1_dim, n_mels=n_mels, frames=frames)
        self.hparams = {"activation": activation, "width": float(width),
                        "dropout": float(dropout), "n_classes": int(n_classes)}
        # The input size is part of the model only when it differs from the seeds' FS1/FS2,
        # so every bundle written before feature configs existed still rebuilds unchanged.
        dims = {"fs1_dim": int(fs1_dim), "n_mels": int(n_mels), "frames": int(frames)}
        self.hparams.update({k: v for k, v in dims.items() if v != DEFAULT_DIMS[k]})
        self.fs1_dim, self.n_mels, self.frames = dims["fs1_dim"], dims["n_mels"], dims["frames"]

    @property
    def fs1_shape(self) -> tuple[int, int]:
        return (1, self.fs1_dim)

    @property
    def fs2_shape(self) -> tuple[int, int, int]:
        return (1, self.n_mels, self.frames)

    def example_input(self, batch: int = 1, frames: int | None = None,
                      device: torch.device | str | None = None
                      ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Random input of the right shape: a tensor, or ``(fs1, fs2)`` for two-input models.

        ``frames`` sets the spectrogram length (default ``config.FS2_FRAMES``); it is
        ignored for FS1-only models.
        """
        frames = getattr(self, "frames", config.FS2_FRAMES) if frames is None else frames
        fs1 = torch.randn(batch, 1, getattr(self, "fs1_dim", config.FS1_DIM), device=device)
        fs2 = torch.randn(batch, 1, getattr(self, "n_mels", config.N_MELS), frames,
                          device=device)
        if self.input_space == "voice":
            from ser.voice import VOICE_DIM

            return torch.randn(batch, 1, VOICE_DIM, device=device)
        if self.input_space == "fs1":
            return fs1
        if self.input_space == "fs2":
            return fs2
        return fs1, fs2

    def receptive_field(self) -> int | tuple[int, int] | dict[str, Any]:
        """Receptive field of one unit of the last convolutional map, in input units.

        An int (FS1 positions) for 1D models, ``(mel bands, frames)`` for 2D models.
        Computed from the modules under ``features``; models built otherwise override it.
        It may exceed the input size: then a unit sees the whole input (zero padding
        included).
        """
        n_axes = 1 if self.input_space == "fs1" else 2
        state = chain_receptive_field(trunk_modules(self), n_axes)
        rf = tuple(r for r, _ in state)
        return rf[0] if n_axes == 1 else rf

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` with the expected shape when ``x`` cannot be this model's input."""
        if self.input_space == "fs1":
            self._check_vector(x)
        else:
            self._check_frames(x)

    def _check_frames(self, x: torch.Tensor) -> None:
        """Raise a readable error when a fixed-length 2D model gets another length."""
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} takes (batch, 1, n_mels, frames), "
                             f"got shape {tuple(x.shape)}")
        if tuple(x.shape[1:3]) != self.fs2_shape[:2]:
            raise ValueError(f"{type(self).__name__} takes (batch, 1, {self.n_mels}, frames), "
                             f"got shape {tuple(x.shape)}")
        if not self.variable_length and tuple(x.shape[1:]) != self.fs2_shape:
            raise ValueError(f"{type(self).__name__} has a flatten+dense head and needs "
                             f"input (batch, {', '.join(map(str, self.fs2_shape))}); got "
                             f"{tuple(x.shape)}. Pad or crop to {self.frames} frames.")
        if self.variable_length and x.shape[-1] < MIN_FRAMES:
            raise ValueError(f"{type(self).__name__} needs at least {MIN_FRAMES} frames, "
                             f"got {x.shape[-1]}")

    def _check_vector(self, x: torch.Tensor) -> None:
        # The 1D models see a fixed set of 169 statistics, not a sequence, so even the
        # global-pooling ones are not length-agnostic.
        if tuple(x.shape[1:]) != self.fs1_shape:
            raise ValueError(f"{type(self).__name__} takes FS1 input (batch, "
                             f"{', '.join(map(str, self.fs1_shape))}), got {tuple(x.shape)}")
