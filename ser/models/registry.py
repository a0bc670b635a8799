"""Name → model factory registry, after timm's ``register_model`` / ``create_model``.

A family module decorates one small factory per architecture::

    @register
    def lenet2d(**kwargs: Any) -> LeNet2D:
        return LeNet2D(**kwargs)

The factory's return annotation names the model class, so metadata such as the input
space can be read without building the network.
"""

from __future__ import annotations

import fnmatch
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from ser.models.base import SERModel

Factory = TypeVar("Factory", bound=Callable[..., SERModel])

_FACTORIES: dict[str, Callable[..., SERModel]] = {}
_CLASSES: dict[str, type[SERModel]] = {}


def register(fn: Factory) -> Factory:
    """Register ``fn`` under its own name; the model class is its return annotation.

    Raises
    ------
    ValueError
        If the name is already taken.
    TypeError
        If ``fn`` is not annotated to return an :class:`SERModel` subclass.
    """
    name = fn.__name__
    if name in _FACTORIES:
        raise ValueError(f"model name {name!r} is already registered")
    cls = typing.get_type_hints(fn).get("return")
    if not (isinstance(cls, type) and issubclass(cls, SERModel)):
        raise TypeError(f"factory {name!r} must be annotated to return an SERModel subclass")
    _FACTORIES[name] = fn
    _CLASSES[name] = cls
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard ``pattern``, sorted.

    Examples
    --------
    >>> list_models("*2d")  # doctest: +SKIP
    ['alexnet2d', 'custom2d', 'gn2d', 'lenet2d', 'ser2d', 'vgg2d']
    """
    return sorted(name for name in _FACTORIES if fnmatch.fnmatchcase(name, pattern))


def model_class(name: str) -> type[SERModel]:
    """The class a registered name builds; ``ValueError`` listing valid names if unknown."""
    if name not in _CLASSES:
        raise ValueError(f"unknown model {name!r}; valid names are: "
                         f"{', '.join(list_models())}")
    return _CLASSES[name]


def default_kwargs(name: str) -> dict[str, Any]:
    """Keyword arguments the model ``name`` accepts, with their default values."""
    params = inspect.signature(model_class(name).__init__).parameters
    return {k: p.default for k, p in params.items()
            if k != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY}


def resolve_kwargs(name: str, **kwargs: Any) -> dict[str, Any]:
    """Defaults of ``name`` updated with ``kwargs``; ``TypeError`` on an unknown keyword."""
    resolved = default_kwargs(name)
    unknown = sorted(set(kwargs) - set(resolved))
    if unknown:
        raise TypeError(f"model {name!r} got unknown keyword argument(s) {unknown}; "
                        f"it accepts {sorted(resolved)}")
    resolved.update(kwargs)
    return resolved


def create_model(name: str, **kwargs: Any) -> SERModel:
    """Build the registered model ``name`` with keyword arguments ``kwargs``.

    Parameters
    ----------
    name
        A name from :func:`list_models`.
    **kwargs
        ``activation`` ("relu", "silu", "elu"), ``width`` (channel multiplier),
        ``dropout`` and ``n_classes``; defaults depend on the model.

    Returns
    -------
    SERModel
        A freshly initialised ``torch.nn.Module`` returning logits ``(batch, n_classes)``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones) or an invalid value.
    TypeError
        A keyword the model does not accept.

    Examples
    --------
    >>> model = create_model("lenet2d", activation="silu")  # doctest: +SKIP
    """
    resolve_kwargs(name, **kwargs)
    return _FACTORIES[name](**kwargs)


def model_input_space(name: str) -> str:
    """Feature space model ``name`` consumes: "fs1", "fs2" or "fs1+fs2"."""
    return model_class(name).input_space


def check_kwargs(name: str, kwargs: Any) -> dict[str, Any]:
    """Check ``kwargs`` for model ``name`` without building anything: every key known, every
    value of the right kind and inside `ser.models.base.KWARG_LIMITS`. Returns the resolved
    keyword arguments; raises ``ValueError`` (or ``TypeError`` for unknown keys)."""
    from ser.models.base import check_common_kwargs

    if not isinstance(kwargs, dict):
        raise TypeError(f"model keyword arguments must be a mapping, not {type(kwargs).__name__}")
    resolved = resolve_kwargs(name, **kwargs)
    check_common_kwargs(**resolved)
    return resolved


def expected_state(name: str, kwargs: dict[str, Any]) -> tuple[dict[str, tuple[int, ...]], int]:
    """Shapes of the state dict ``create_model(name, **kwargs)`` would have, and its number of
    trainable parameters, computed on PyTorch's ``meta`` device: no memory is allocated for
    the weights, so an absurd request costs nothing. Call `check_kwargs` first."""
    import torch

    with torch.device("meta"):
        model = _FACTORIES[name](**kwargs)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes, sum(p.numel() for p in model.parameters())
