"""A trained model as one file: weights + the card everything else needs to predict.

A bundle is a ``.pt`` file holding only tensors, strings and numbers, so it loads with
``torch.load(..., weights_only=True)``: no pickled code runs. Its card (JSON) records the
architecture and kwargs, feature space and config, label order, normalisation, split
protocol, data fingerprint, metrics, training time, device and library versions (see
`ser.card.Card`); a copy of the card sits beside the file (``card.json`` next to a
``model.pt``, else ``<name>.json``) for people and tools. The card carries a digest of the
weights (``weights_sha256``) and a digest of itself (``card_sha256``, which covers the
weights digest too), so a file whose weights or card were edited or damaged is refused.

Loading validates before it allocates: the card's architecture must be known, every model
keyword argument inside the registry's range, the feature config and normalisation usable,
and the stored tensors must have exactly the shapes the architecture would build (worked
out on PyTorch's ``meta`` device, which allocates nothing). Only then is the model built.
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
#: 2: the card carries ``card_sha256``. Version-1 files (weights digest only) are refused;
#: ``python scripts/rechecksum_bundles.py PATH`` upgrades them after checking the weights.
FORMAT_VERSION = 2
#: Card keys the card digest leaves out (the digest itself).
_UNSIGNED = ("card_sha256",)
#: Plausible feature-config values; anything outside is a damaged or hostile card.
_FEATURE_LIMITS = {"sample_rate": (4000, 192000), "n_fft": (64, 16384),
                   "hop_length": (16, 8192), "n_mels": (16, 512), "n_mfcc": (1, 128),
                   "fs2_frames": (8, 4096), "top_db": (1.0, 200.0)}


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


def card_digest(card: dict) -> str:
    """SHA-256 of a card in canonical JSON (sorted keys, no spaces), without its own digest.
    The card holds the weights digest, so this one digest vouches for card and weights."""
    body = {k: v for k, v in card.items() if k not in _UNSIGNED}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def sign_card(card: dict) -> dict:
    """``card`` with the current format stamp and its ``card_sha256`` filled in."""
    card = {k: v for k, v in card.items() if k not in _UNSIGNED}
    card.update(format=FORMAT, format_version=FORMAT_VERSION)
    card["card_sha256"] = card_digest(card)
    return card


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
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise BundleError(f"refusing to save a model with NaN or infinite weights ({bad[0]})")
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    card = dict(card)
    card.update({"format": FORMAT, "format_version": FORMAT_VERSION, "labels": list(
        config.LABELS), "weights_dtype": "float16" if half else "float32",
        "weights_sha256": weights_digest(state)})
    card.setdefault("name", path.stem)
    card.setdefault("libraries", library_versions())
    card = sign_card(card)
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
        raise BundleError(_load_failure(name, data, err)) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BundleError(f"{name} is a PyTorch file but not a SER Studio model bundle.")
    try:
        card = json.loads(obj["card"])
        state = obj["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise BundleError(f"{name} has a damaged model card.") from None
    if not isinstance(card, dict):
        raise BundleError(f"{name} has a damaged model card.")
    version = card.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{name} has a damaged model card (format version {version!r}).")
    if version > FORMAT_VERSION:
        raise BundleError(f"{name} was written by a newer SER Studio (bundle format "
                          f"{card.get('format_version')}); update SER Studio to load it.")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in
                                              state.values()):
        raise BundleError(f"{name} has damaged weights.")
    if weights_digest(state) != card.get("weights_sha256"):
        raise BundleError(f"{name} has been modified or damaged: its weights do not match "
                          "the checksum in its card.")
    if "card_sha256" not in card:
        raise BundleError(f"{name} has no checksum over its model card (it was written by an "
                          "older SER Studio, or the checksum was removed), so its card "
                          "cannot be trusted. Re-save it with `python "
                          "scripts/rechecksum_bundles.py FILE` if you trust its origin.")
    if card_digest(card) != card.get("card_sha256"):
        raise BundleError(f"{name} has been modified or damaged: its model card does not "
                          "match the checksum stored with it.")
    if list(card.get("labels", [])) != list(config.LABELS):
        raise BundleError(f"{name} predicts labels {card.get('labels')}, not SER Studio's "
                          f"{list(config.LABELS)}.")
    return card, state


def _load_failure(name: str, data: bytes, err: Exception) -> str:
    """What to tell the user when ``torch.load(weights_only=True)`` refuses ``data``."""
    text = str(err)
    if "Unsupported global" in text:
        # The restricted unpickler met code or objects a bundle never holds. Nothing ran.
        return (f"{name} is not a SER Studio model bundle: it contains Python objects or "
                "code that a bundle never holds. It was refused without running any of it.")
    if data[:1] == b"\x80":
        return (f"{name} is a Python pickle, not a SER Studio model bundle. It was refused "
                "without running any of it.")
    if data[:2] == b"PK":
        return f"{name} is truncated or damaged ({type(err).__name__})."
    return f"{name} is not a SER Studio model file."


def _check_number(what: str, value, low: float, high: float, *, integer: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or not (low <= value <= high):
        kind = "an integer" if integer else "a number"
        raise BundleError(f"The model card's {what} is {value!r}; it must be {kind} in "
                          f"[{low:g}, {high:g}].")


def validate_card(card: dict) -> Card:
    """Check everything prediction will rely on before anything is built; the typed card.

    Raises `BundleError` naming the first bad field: unknown architecture, a model keyword
    argument outside the registry's range, an input space other than the architecture's,
    an unusable feature config, missing or malformed normalisation statistics.
    """
    from ser.models import check_kwargs, list_models, model_input_space

    arch = card.get("arch")
    if not isinstance(arch, str) or arch not in list_models():
        shown = arch if isinstance(arch, str) and len(arch) <= 40 else type(arch).__name__
        raise BundleError(f"The model uses architecture {shown!r}, which this version of SER "
                          "Studio does not have.")
    kwargs = card.get("model_kwargs", {})
    try:
        resolved = check_kwargs(arch, kwargs)
    except (TypeError, ValueError) as err:
        raise BundleError(f"The model card asks for an impossible {arch} model: {err}") from None
    if resolved["n_classes"] != len(config.LABELS):
        raise BundleError(f"The model card asks for {resolved['n_classes']} outputs; SER "
                          f"Studio predicts {len(config.LABELS)} emotions.")
    space = card.get("input_space")
    if space != model_input_space(arch):
        raise BundleError(f"The model card's input space is {space!r}, but {arch} takes "
                          f"{model_input_space(arch)!r}.")
    fc = card.get("feature_config", {})
    if not isinstance(fc, dict):
        raise BundleError("The model card's feature config is damaged.")
    for key, (low, high) in _FEATURE_LIMITS.items():
        if key in fc:
            _check_number(f"feature_config.{key}", fc[key], low, high,
                          integer=key != "top_db")
    try:
        typed = Card.from_dict(card)
    except (TypeError, ValueError, KeyError) as err:
        raise BundleError(f"The model card cannot be read: {err}") from None
    feats = typed.features
    if feats.n_fft < feats.hop_length:
        raise BundleError(f"The model card's feature config has hop_length "
                          f"{feats.hop_length} longer than n_fft {feats.n_fft}.")
    dims = {"fs1_dim": feats.fs1_dim, "n_mels": feats.n_mels}
    for key, value in dims.items():
        if key in resolved and key in kwargs and resolved[key] != value:
            raise BundleError(f"The model card is inconsistent: the model takes {key} "
                              f"{resolved[key]} but the feature config gives {value}.")
    norm = typed.normalisation
    if not isinstance(norm, dict):
        raise BundleError("The model card's normalisation statistics are damaged.")
    from ser.dataset import spaces_for

    for s in spaces_for(space):
        want = {"fs1": feats.fs1_dim, "voice": feats.input_shape("voice")[1]}.get(s, feats.n_mels)
        stats = norm.get(s)
        if not isinstance(stats, dict) or "mean" not in stats or "std" not in stats:
            raise BundleError(f"The model card has no normalisation statistics for {s}; "
                              "the model cannot be fed correctly without them.")
        for k in ("mean", "std"):
            try:
                arr = np.asarray(stats[k], dtype=np.float64)
            except (TypeError, ValueError):
                raise BundleError(f"The model card's {s} normalisation {k} is not a list "
                                  "of numbers.") from None
            if arr.shape != (want,):
                raise BundleError(f"The model card's {s} normalisation {k} has shape "
                                  f"{arr.shape}; {want} values are needed.")
            if not np.isfinite(arr).all() or (k == "std" and not (arr > 0).all()):
                raise BundleError(f"The model card's {s} normalisation {k} holds "
                                  + ("non-positive or " if k == "std" else "")
                                  + "non-finite values.")
    return typed


def _check_shapes(arch: str, kwargs: dict, state: dict[str, torch.Tensor],
                  params: int) -> None:
    """The stored tensors must be exactly the ones ``arch`` builds: same names, same shapes,
    and (when the card states it) the same parameter count. A short message on mismatch."""
    from ser.models import expected_state

    shapes, n_params = expected_state(arch, kwargs)
    missing = sorted(set(shapes) - set(state))
    extra = sorted(set(state) - set(shapes))
    wrong = sorted(k for k in set(shapes) & set(state) if tuple(state[k].shape) != shapes[k])
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing")
        if extra:
            parts.append(f"{len(extra)} unexpected tensor(s)")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: "
                         f"{tuple(state[k].shape)} stored, {shapes[k]} expected)")
        raise BundleError(f"The weights do not fit architecture {arch!r}: "
                          + "; ".join(parts) + ".")
    if params and int(params) != n_params:
        raise BundleError(f"The model card claims {int(params):,} parameters but the "
                          f"weights of {arch} hold {n_params:,}.")


def load_bundle(source: str | Path | bytes) -> Bundle:
    """Load a bundle into a ready-to-use model (eval mode, float32, CPU).

    The card is validated (`validate_card`) and the weights' shapes checked against the
    architecture before the model is built, so a hostile card cannot make the server
    allocate a huge network.

    Raises
    ------
    BundleError
        Missing, empty, truncated, not a bundle, tampered with, an unknown architecture,
        an impossible or inconsistent card, or weights that do not fit the architecture.
    """
    from ser.models import create_model

    card, state = read(source)
    typed = validate_card(card)
    arch, kwargs = typed.arch, typed.model_kwargs
    params = card.get("params", 0)
    if not isinstance(params, int) or isinstance(params, bool) or params < 0:
        raise BundleError(f"The model card's parameter count is {params!r}.")
    _check_shapes(arch, kwargs, state, params)
    try:
        model = create_model(arch, **kwargs)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()})
    except (RuntimeError, TypeError, ValueError) as err:
        first = str(err).splitlines()[0][:200]
        raise BundleError(f"The weights do not fit architecture {arch!r}: {first}") from None
    model.eval()
    for p in model.parameters():
        if not torch.isfinite(p).all():
            raise BundleError("The model's weights contain NaN or infinite values; it "
                              "cannot make meaningful predictions.")
    return Bundle(model, typed, Path(source) if isinstance(source, (str, Path)) else None)


def read_card(path: str | Path) -> Card:
    """The card of a bundle, from its JSON copy when present (cheap) or from the file."""
    path = Path(path)
    side = card_path(path)
    if side.exists():
        # The copy is used only while it matches its own checksum; an edited copy is
        # ignored in favour of the card inside the bundle (which `read` verifies).
        try:
            d = json.loads(side.read_text())
            if isinstance(d, dict) and d.get("card_sha256") == card_digest(d):
                return Card.from_dict(d)
        except (json.JSONDecodeError, ValueError, TypeError, OSError):
            pass
    try:
        return Card.from_dict(read(path)[0])
    except (TypeError, ValueError) as err:
        raise BundleError(f"{path.name}: the model card cannot be read: {err}") from None
