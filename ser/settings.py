"""Deployment settings: the public (demo) mode and the corpora a public server offers.

A private SER Studio trusts its user: the sidebar takes any folder on the machine. A public
demo must not: in public mode visitors choose only among corpora the operator configured
(by name; their folders are never shown), and no server path is printed anywhere.

Settings come from ``ser.toml`` in the project folder (or the file named by
``SER_CONFIG``), then the environment, which wins::

    [ser]
    public = true

    [ser.corpora]            # name shown to visitors = folder or pool data string
    "CREMA-D" = "/srv/data/crema-d"
    "CREMA-D + TESS" = "crema-d=/srv/data/crema-d,tess=/srv/data/tess"

``SER_PUBLIC=1`` switches public mode on (``0`` off); ``SER_CORPORA`` lists corpora as
``name=data`` entries separated by semicolons (``CREMA-D=/srv/data/crema-d;TESS=...``).
``max_seconds`` / ``SER_MAX_SECONDS`` bounds the clip length the Predict page accepts
(default 120 s in public mode, 600 s otherwise), and with it each request's time and memory.
``training`` / ``SER_TRAINING`` lets visitors launch and cancel runs (default: only on a
private server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ser import config

#: Default clip limit of a public server (a private one keeps `config.MAX_AUDIO_SECONDS`).
PUBLIC_MAX_SECONDS = 120.0
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


class SettingsError(ValueError):
    """The settings file or variables cannot be used; the message says which."""


@dataclass(frozen=True)
class Settings:
    public: bool = False
    #: Visitor-facing name → data string (a folder, a CSV, or a pool of folders).
    corpora: dict[str, str] = field(default_factory=dict)
    #: Longest clip the Predict page accepts (None: the mode's default, see `clip_limit`).
    max_seconds: float | None = None
    #: May visitors launch and cancel training runs (None: yes privately, no publicly)?
    training: bool | None = None

    @property
    def training_allowed(self) -> bool:
        return (not self.public) if self.training is None else self.training

    @property
    def clip_limit(self) -> float:
        """Seconds of audio one Predict request may hold: bounds its time and memory."""
        if self.max_seconds is not None:
            return self.max_seconds
        return PUBLIC_MAX_SECONDS if self.public else config.MAX_AUDIO_SECONDS


def settings_file() -> Path:
    return Path(os.environ.get("SER_CONFIG") or config.ROOT / "ser.toml")


def _parse_toml(text: str) -> dict:
    try:
        import tomllib  # Python ≥ 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        raise SettingsError("Reading ser.toml needs Python 3.11 or later; set SER_PUBLIC "
                            "and SER_CORPORA in the environment instead.") from None
    return tomllib.loads(text)


def load_settings() -> Settings:
    """The current settings (file, then environment). Read on every call: cheap."""
    public, corpora, max_seconds, training = False, {}, None, None
    path = settings_file()
    if path.is_file():
        try:
            data = _parse_toml(path.read_text(encoding="utf-8")).get("ser", {})
        except (OSError, ValueError) as err:  # TOMLDecodeError is a ValueError
            raise SettingsError(f"The settings file {path.name} cannot be read: {err}") from None
        public = _flag(data.get("public", False), f"{path.name}: [ser] public")
        raw = data.get("corpora", {})
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise SettingsError(f"{path.name}: [ser.corpora] must map names to folders.")
        corpora = {str(k): v for k, v in raw.items()}
        if "training" in data:
            training = _flag(data["training"], f"{path.name}: [ser] training")
        if "max_seconds" in data:
            max_seconds = _seconds(data["max_seconds"], f"{path.name}: [ser] max_seconds")
    env = os.environ.get("SER_PUBLIC")
    if env is not None:
        public = _flag(env, "SER_PUBLIC")
    if os.environ.get("SER_CORPORA"):
        corpora = {}
        for entry in os.environ["SER_CORPORA"].split(";"):
            if not entry.strip():
                continue
            name, sep, data = entry.partition("=")
            if not sep or not name.strip() or not data.strip():
                raise SettingsError("SER_CORPORA entries must look like name=/folder, "
                                    "separated by semicolons.")
            corpora[name.strip()] = data.strip()
    if os.environ.get("SER_MAX_SECONDS"):
        max_seconds = _seconds(os.environ["SER_MAX_SECONDS"], "SER_MAX_SECONDS")
    if os.environ.get("SER_TRAINING") is not None:
        training = _flag(os.environ["SER_TRAINING"], "SER_TRAINING")
    return Settings(public, corpora, max_seconds, training)


def _seconds(value, what: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 1.0 <= seconds <= config.MAX_AUDIO_SECONDS:
        raise SettingsError(f"{what} must be a number of seconds in [1, "
                            f"{config.MAX_AUDIO_SECONDS:g}], not {value!r}.")
    return seconds


def _flag(value, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise SettingsError(f"{what} must be true or false, not {value!r}.")


def is_public() -> bool:
    return load_settings().public
