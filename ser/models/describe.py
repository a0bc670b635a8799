"""Human-readable facts about registered models: layer table, parameters, MACs, provenance.

Numbers come from one forward pass of a single default-sized example through the real
module, observed with forward hooks, so they cannot drift from the code.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pandas as pd
import torch
from torch import nn

from ser import config
from ser.models.registry import create_model, list_models, model_class, resolve_kwargs

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def _macs(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> int:
    """Multiply-accumulates of one call for a batch of 1 (0 for layers not counted)."""
    if isinstance(module, nn.modules.conv._ConvNd):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.GRU):
        # Per step and direction: three gates, each an input and a recurrent product.
        out = output[0] if isinstance(output, tuple) else output
        steps = out.shape[1] if module.batch_first else out.shape[0]
        dirs = 2 if module.bidirectional else 1
        h = module.hidden_size
        total, width_in = 0, module.input_size
        for _ in range(module.num_layers):
            total += steps * dirs * 3 * h * (width_in + h)
            width_in = dirs * h
        return total
    if hasattr(module, "macs_per_call"):  # a leaf with its own arithmetic (self-attention)
        return int(module.macs_per_call(output))
    if isinstance(module, _NORMS):
        # One scale-and-shift per element once the statistics are known.
        return output.numel()
    return 0


def _input_shape(input_space: str) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    if input_space == "fs1":
        return config.FS1_SHAPE
    if input_space == "fs2":
        return config.FS2_SHAPE
    if input_space == "voice":
        from ser.voice import VOICE_DIM

        return (1, VOICE_DIM)
    return {"fs1": config.FS1_SHAPE, "fs2": config.FS2_SHAPE}


@torch.no_grad()
def layer_table(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]
                ) -> list[dict[str, Any]]:
    """One row per leaf-module call, in execution order, for a batch-of-1 ``example``.

    Each row: ``layer`` (qualified name), ``type``, ``output_shape`` (without batch),
    ``params`` (the module's own) and ``macs``.
    """
    names = {module: name for name, module in model.named_modules()}
    rows: list[dict[str, Any]] = []

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        main = output[0] if isinstance(output, tuple) else output  # RNNs: (outputs, state)
        shape = tuple(main.shape[1:]) if isinstance(main, torch.Tensor) else None
        rows.append({
            "layer": names[module],
            "type": type(module).__name__,
            "output_shape": shape,
            "params": sum(p.numel() for p in module.parameters(recurse=False)),
            "macs": _macs(module, inputs, output) if shape is not None else 0,
        })

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        model(*example) if isinstance(example, tuple) else model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return rows


_CACHE: dict[tuple[str, tuple[tuple[str, Any], ...]], dict[str, Any]] = {}


def describe(name: str, **kwargs: Any) -> dict[str, Any]:
    """Facts about model ``name`` built with ``kwargs`` (defaults filled in).

    Results are cached per (name, resolved kwargs); each call returns a fresh copy, so
    callers may modify it.

    Returns
    -------
    dict
        ``name``, ``display_name``, ``family`` ("1D CNN", "2D CNN", "1D+2D",
        "2D CNN + transformer", "Pretrained encoder + head"),
        ``input_space``, ``input_shape`` (without batch; a dict for two-input models),
        ``kwargs`` (resolved), ``layers`` (see :func:`layer_table`), ``total_params``,
        ``trainable_params``, ``macs`` (per clip at the default input size),
        ``receptive_field`` (int for 1D, ``(bands, frames)`` for 2D, a dict for
        two-input models), ``variable_length``, ``summary``, ``size_note``, ``source``.

    Raises
    ------
    ValueError, TypeError
        As :func:`ser.models.create_model`.
    """
    resolved = resolve_kwargs(name, **kwargs)
    key = (name, tuple(sorted(resolved.items())))
    if key not in _CACHE:
        _CACHE[key] = _describe(name, resolved)
    return copy.deepcopy(_CACHE[key])


def _describe(name: str, resolved: dict[str, Any]) -> dict[str, Any]:
    cls = model_class(name)
    model = create_model(name, **resolved)
    layers = layer_table(model, model.example_input(batch=1))
    return {
        "name": name,
        "display_name": cls.display_name,
        "family": cls.family,
        "input_space": cls.input_space,
        "input_shape": _input_shape(cls.input_space),
        "kwargs": resolved,
        "layers": layers,
        "total_params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "macs": sum(row["macs"] for row in layers),
        "receptive_field": model.receptive_field(),
        "variable_length": cls.variable_length,
        "summary": cls.summary,
        "size_note": cls.size_note,
        "source": cls.source,
    }


def models_table(pattern: str = "*") -> pd.DataFrame:
    """One row per registered model matching ``pattern``, at default keyword arguments.

    Columns: ``name``, ``display_name``, ``family``, ``input``, ``params``, ``MACs``,
    ``variable_length``.
    """
    rows = []
    for name in list_models(pattern):
        info = describe(name)
        rows.append({"name": name, "display_name": info["display_name"],
                     "family": info["family"], "input": info["input_space"],
                     "params": info["total_params"], "MACs": info["macs"],
                     "variable_length": info["variable_length"]})
    columns = ["name", "display_name", "family", "input", "params", "MACs", "variable_length"]
    return pd.DataFrame(rows, columns=columns)
