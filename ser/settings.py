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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ser import config

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


class SettingsError(ValueError):
    """The settings file or variables cannot be used; the message says which."""


@dataclass(frozen=True)
class Settings:
    public: bool = False
    #: Visitor-facing name → data string (a folder, a CSV, or a pool of folders).
    corpora: dict[str, str] = field(default_factory=dict)


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
    public, corpora = False, {}
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
    return Settings(public, corpora)


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
