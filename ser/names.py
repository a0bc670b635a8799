"""File names of the model folder, and which bundle files a name given by a user means.

The lowest layer that knows what a shipped model looks like on disk: it imports nothing of
ours but `ser.config` and `ser.fileio`, so the training loop (distillation teachers) and the
zoo, ensemble and CLI (everything else) resolve names the same way without an import cycle.
"""

from __future__ import annotations

from pathlib import Path

from ser import config
from ser.fileio import read_json

#: A model folder's weights and the shipped ensemble's definition.
BUNDLE_FILE, ENSEMBLE_FILE = "model.pt", "ensemble.json"


def ensemble_members(folder: Path | None = None) -> list[str]:
    """Names listed by the shipped ensemble's file (empty when there is none or it is
    unreadable)."""
    try:
        members = read_json(Path(folder or config.models_dir()) / ENSEMBLE_FILE)["members"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(m) for m in members] if isinstance(members, list) else []


def bundle_files(arg: str, folder: Path | None = None) -> list[Path]:
    """The bundle files ``arg`` names: a ``.pt`` file, a model folder, a folder of model
    folders (e.g. ``models/``), ``ensemble`` (the shipped ensemble's members) or a shipped
    model's name. Empty when it names nothing."""
    p = Path(arg)
    if p.is_file():
        return [p]
    if p.is_dir():
        if (p / BUNDLE_FILE).is_file():
            return [p / BUNDLE_FILE]
        return sorted(d / BUNDLE_FILE for d in p.iterdir() if (d / BUNDLE_FILE).is_file())
    root = Path(folder or config.models_dir())
    if arg == "ensemble":
        return [root / m / BUNDLE_FILE for m in ensemble_members(root)
                if (root / m / BUNDLE_FILE).is_file()]
    if arg and "/" not in arg and "\\" not in arg and (root / arg / BUNDLE_FILE).is_file():
        return [root / arg / BUNDLE_FILE]
    return []
