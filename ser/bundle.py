"""A trained model as one file: weights + the card everything else needs to predict.

A bundle is a ``.pt`` file holding only tensors, strings and numbers, so it loads with
``torch.load(..., weights_only=True)``: no pickled code runs. Its card (JSON) records the
architecture and kwargs, feature space and config, label order, normalisation, split
protocol, data fingerprint, metrics, training time, device and library versions (see
`ser.card.Card`); a copy of the card sits beside the file (``card.json`` next to a
``model.pt``, else ``<name>.json``) for people and tools. The card carries a digest of the
weights, so a tampered or damaged file is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ser import config
from ser.card import Card
from ser.fileio import atomic_write_bytes, write_json

FORMAT = "ser-studio-bundle"
FORMAT_VERSION = 1


class BundleError(ValueError):
    """The file is not a usable SER Studio model; the message says what is wrong."""


@dataclass
class Bundle:
    """A loaded bundle: the ready model (eval mode, CPU) and its card."""

    model: torch.nn.Module
    card: Card
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.card.name or (self.path.stem if self.path else "model")

    @property
    def input_space(self) -> str:
        return self.card.input_space

    @property
    def normalisation(self) -> dict[str, dict[str, np.ndarray]]:
        return self.card.normalisation_arrays()


def card_path(bundle_path: str | Path) -> Path:
    """Where a bundle's readable card copy lives: ``card.json`` beside ``model.pt``,
    ``NAME.json`` beside any other ``NAME.pt``."""
    p = Path(bundle_path)
    return p.with_name("card.json") if p.name == "model.pt" else p.with_suffix(".json")


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import platform

    import librosa
    import sklearn

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "librosa": librosa.__version__,
            "scikit-learn": sklearn.__version__}


def save_bundle(path: str | Path, model: torch.nn.Module, card: Card, *,
                half: bool = False) -> Path:
    """Write ``model``'s weights and ``card`` to ``path`` (``.pt``) and its card copy
    (`card_path`).

    ``half`` stores floating-point weights as float16 (half the size); they are cast back
    to float32 on load.
    """
    if not card.normalisation:
        raise ValueError("bundle card has no normalisation statistics")
    card = card.to_dict()
    path = Path(path)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    card = dict(card)
    card.update({"format": FORMAT, "format_version": FORMAT_VERSION, "labels": list(
        config.LABELS), "weights_dtype": "float16" if half else "float32",
        "weights_sha256": weights_digest(state)})
    card.setdefault("name", path.stem)
    card.setdefault("libraries", library_versions())
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "card": json.dumps(card), "state_dict": state}, buf)
    atomic_write_bytes(path, buf.getvalue())
    write_json(card_path(path), card)
    return path


def read(source: str | Path | bytes) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read and validate a bundle's card and weights without building the model."""
    name = Path(source).name if isinstance(source, (str, Path)) else "the uploaded file"
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.exists():
            raise BundleError(f"{p} does not exist.")
        if p.is_dir():
            raise BundleError(f"{p} is a folder; choose the model's .pt file.")
        data = p.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise BundleError(f"{name} is empty.")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        kind = "truncated or damaged" if data[:2] == b"PK" else "not a SER Studio model file"
        raise BundleError(f"{name} is {kind} ({type(err).__name__}).") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BundleError(f"{name} is a PyTorch file but not a SER Studio model bundle.")
    try:
        card = json.loads(obj["card"])
        state = obj["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise BundleError(f"{name} has a damaged model card.") from None
    if card.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(f"{name} was written by a newer SER Studio (bundle format "
                          f"{card.get('format_version')}); update SER Studio to load it.")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in
                                              state.values()):
        raise BundleError(f"{name} has damaged weights.")
    if weights_digest(state) != card.get("weights_sha256"):
        raise BundleError(f"{name} has been modified or damaged: its weights do not match "
                          "the checksum in its card.")
    if list(card.get("labels", [])) != list(config.LABELS):
        raise BundleError(f"{name} predicts labels {card.get('labels')}, not SER Studio's "
                          f"{list(config.LABELS)}.")
    return card, state


def load_bundle(source: str | Path | bytes) -> Bundle:
    """Load a bundle into a ready-to-use model (eval mode, float32, CPU).

    Raises
    ------
    BundleError
        Missing, empty, truncated, not a bundle, tampered with, or an unknown architecture.
    """
    from ser.models import create_model, list_models

    card, state = read(source)
    arch = card.get("arch")
    if arch not in list_models():
        raise BundleError(f"The model uses architecture {arch!r}, which this version of SER "
                          "Studio does not have.")
    try:
        model = create_model(arch, **card.get("model_kwargs", {}))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()})
    except (RuntimeError, TypeError, ValueError) as err:
        raise BundleError(f"The weights do not fit architecture {arch!r}: {err}") from None
    model.eval()
    try:
        typed = Card.from_dict(card)
    except (TypeError, ValueError) as err:
        raise BundleError(f"The model card cannot be read: {err}") from None
    return Bundle(model, typed, Path(source) if isinstance(source, (str, Path)) else None)


def read_card(path: str | Path) -> Card:
    """The card of a bundle, from its JSON copy when present (cheap) or from the file."""
    path = Path(path)
    side = card_path(path)
    if side.exists():
        try:
            return Card.from_dict(json.loads(side.read_text()))
        except (json.JSONDecodeError, ValueError, TypeError):
            pass
    try:
        return Card.from_dict(read(path)[0])
    except (TypeError, ValueError) as err:
        raise BundleError(f"{path.name}: the model card cannot be read: {err}") from None
