"""Model registry: every architecture SER Studio can train, by name.

>>> from ser.models import create_model, list_models
>>> list_models("*2d")  # doctest: +SKIP
['alexnet2d', 'custom2d', 'gn2d', 'lenet2d', 'ser2d', 'vgg2d']
>>> model = create_model("lenet2d", activation="silu")  # doctest: +SKIP

1D models take FS1 ``(batch, 1, 169)``; 2D models take FS2 ``(batch, 1, 128, frames)``
(frames = 216 unless the model is ``variable_length``); ``combined`` takes both as
``model(fs1, fs2)``. All return logits ``(batch, n_classes)``. Every constructor accepts
``activation`` ("relu", "silu", "elu"), ``width`` (channel multiplier), ``dropout`` and
``n_classes``.
"""

from __future__ import annotations

# Importing the family modules registers their models.
from ser.models import (  # noqa: F401
    alexnet,
    combined,
    conformer,
    custom,
    gn,
    lenet,
    residual,
    vgg,
    voice,
)
from ser.models.base import ACTIVATIONS, MIN_FRAMES, SERModel
from ser.models.describe import describe, layer_table, models_table
from ser.models.registry import (
    check_kwargs,
    create_model,
    default_kwargs,
    expected_state,
    list_models,
    model_class,
    model_input_space,
    register,
)

__all__ = [
    "check_kwargs",
    "expected_state",
    "ACTIVATIONS",
    "MIN_FRAMES",
    "SERModel",
    "create_model",
    "default_kwargs",
    "describe",
    "layer_table",
    "list_models",
    "model_class",
    "model_input_space",
    "models_table",
    "register",
]
