"""The model card: everything known about one trained model, typed.

A card is stored as JSON inside every bundle and beside it (``card.json``). `Card` reads
every card SER Studio has written (version 1 had no ``card_version`` and kept the facts of
the run inside ``training``) and writes the current version. Readers use attributes
(``card.training.lr``, ``card.test.accuracy``, ``card.protocol_caption()``), never string
keys, so a renamed field fails loudly in one place.

``python -m ser train --config models/<name>/card.json`` retrains from a card: the
``training`` section is the `TrainConfig` that made the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ser.features import FeatureConfig
from ser.fileio import write_json
from ser.recipe import TrainConfig

CARD_VERSION = 2
#: Facts of the run (not options) that version-1 cards kept inside ``training``.
RUN_FIELDS = ("epochs_planned", "epochs_run", "best_epoch", "stopped", "train_time_s",
              "total_time_s", "device", "threads")
_FIELDS = ("name", "arch", "display_name", "family", "model_kwargs", "params", "macs",
           "input_space", "feature_config", "normalisation", "data", "split", "training",
           "metrics", "libraries", "created", "calibration", "card_version")


@dataclass(frozen=True)
class Scores:
    """Headline test (or validation) figures of a model on one set of clips."""

    n: int
    accuracy: float
    uar: float
    macro_f1: float
    macro_precision: float | None = None
    loss: float | None = None

    @classmethod
    def from_dict(cls, d: dict | None) -> Scores | None:
        if not d or d.get("accuracy") is None:
            return None
        return cls(int(d.get("n", 0)), float(d["accuracy"]), float(d["uar"]),
                   float(d.get("macro_f1", float("nan"))), d.get("macro_precision"),
                   d.get("loss"))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Card:
    """A trained model's card. ``extra`` keeps keys this version does not interpret (the
    bundle's format stamp, label list, weights digest) so a round trip loses nothing."""

    name: str
    arch: str
    input_space: str
    model_kwargs: dict = field(default_factory=dict)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    run: dict = field(default_factory=dict)
    normalisation: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    display_name: str = ""
    family: str = ""
    params: int = 0
    macs: int = 0
    libraries: dict = field(default_factory=dict)
    created: str = ""
    calibration: dict | None = None
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ reading, writing
    @classmethod
    def from_dict(cls, d: dict) -> Card:
        """Read a card of any version (1 or 2)."""
        if not isinstance(d, dict) or "arch" not in d or "input_space" not in d:
            raise ValueError("not a model card: 'arch' or 'input_space' is missing")
        version = int(d.get("card_version", 1))
        if version > CARD_VERSION:
            raise ValueError(f"the card is version {version}; this SER Studio reads up to "
                             f"{CARD_VERSION}. Update SER Studio.")
        training = dict(d.get("training", {}))
        run = ({k: training.pop(k) for k in RUN_FIELDS if k in training} if version == 1
               else {})
        run.update(d.get("run", {}))
        if version == 1 and "threads" in run:
            # Version 1 overwrote the requested threads with the count torch used, which is
            # the request (0 meant every core): keep it so a retrain runs the same way.
            training["threads"] = run["threads"]
        return cls(
            name=d.get("name") or d["arch"], arch=d["arch"], input_space=d["input_space"],
            model_kwargs=dict(d.get("model_kwargs", {})),
            features=FeatureConfig.from_dict(d.get("feature_config", {})),
            training=TrainConfig.from_dict(training, strict=False), run=run,
            normalisation=d.get("normalisation", {}), split=d.get("split", {}),
            data=d.get("data", {}), metrics=d.get("metrics", {}),
            display_name=d.get("display_name", ""), family=d.get("family", ""),
            params=int(d.get("params", 0)), macs=int(d.get("macs", 0)),
            libraries=d.get("libraries", {}), created=d.get("created", ""),
            calibration=d.get("calibration"),
            extra={k: v for k, v in d.items() if k not in _FIELDS and k != "run"})

    def to_dict(self) -> dict:
        """JSON-ready; ``training`` holds the recipe only, ``run`` the facts of the run."""
        out = {"card_version": CARD_VERSION, "name": self.name, "arch": self.arch,
               "display_name": self.display_name, "family": self.family,
               "model_kwargs": self.model_kwargs, "params": self.params, "macs": self.macs,
               "input_space": self.input_space, "feature_config": self.features.as_dict(),
               "normalisation": self.normalisation, "data": self.data, "split": self.split,
               "training": self.training.as_dict(), "run": self.run, "metrics": self.metrics,
               "libraries": self.libraries, "created": self.created}
        if self.calibration is not None:
            out["calibration"] = self.calibration
        out.update(self.extra)
        return json.loads(json.dumps(out, default=_plain))

    @classmethod
    def from_json(cls, source: str | Path) -> Card:
        """From a ``card.json`` path or a JSON string."""
        text = Path(source).read_text() if isinstance(source, Path) or (
            isinstance(source, str) and not source.lstrip().startswith("{")) else source
        return cls.from_dict(json.loads(text))

    def to_json(self, path: str | Path) -> Path:
        """Write atomically; returns the path."""
        write_json(path, self.to_dict())
        return Path(path)

    # ------------------------------------------------------------------ what readers ask
    @property
    def test(self) -> Scores | None:
        """Test figures recorded at training time (`None` for a card without them)."""
        return Scores.from_dict(self.metrics.get("test"))

    @property
    def val_uar_best(self) -> float:
        return float(self.metrics.get("val_uar_best") or 0.0)

    @property
    def protocol(self) -> str:
        return self.split.get("protocol", "?")

    @property
    def protocol_name(self) -> str:
        return self.split.get("protocol_name", self.protocol)

    @property
    def corpus(self) -> str:
        return self.data.get("corpus", "?")

    @property
    def synthetic(self) -> bool:
        return bool(self.data.get("synthetic"))

    @property
    def augmentation(self) -> str:
        return self.data.get("augmentation", "")

    @property
    def trained_corpora(self) -> set[str]:
        """Keys of the corpora some of whose clips the model trained on (a held-out
        leave-one-corpus-out corpus excluded). Cards written before pools existed name one
        corpus by its display name; CREMA-D's is mapped to its key."""
        keys = set(self.split.get("corpora") or [])
        if not keys:
            keys = {"crema-d" if self.corpus == "CREMA-D" else self.corpus}
        return keys - {self.split.get("test_corpus")}

    @property
    def speaker_normalised(self) -> bool:
        """True when the model reads log-mel images standardised by the speaker's own
        statistics (`ser.speakers`): it can score a voice only with enrolment clips."""
        return self.training.speaker_norm == "speaker"

    def heard_speaker(self, corpus: str, speaker: str) -> str | None:
        """Which part of this model's split the ``speaker`` of corpus key ``corpus`` was
        in: ``"train"``, ``"val"``, ``"test"``; ``"unseen corpus"`` when the model never
        trained on that corpus; None when the card cannot tell (a random split shares
        speakers between parts, or no speaker lists were recorded)."""
        if corpus not in self.trained_corpora:
            return "unseen corpus"
        if self.split.get("protocol") == "random":
            return None
        lists = self.split.get("speakers") or {}
        for part in ("train", "val", "test"):
            names = set(map(str, lists.get(part) or []))
            if str(speaker) in names or f"{corpus}:{speaker}" in names:
                return part
        return None

    def protocol_caption(self) -> str:
        """e.g. ``speaker-independent split on CREMA-D; 1558 test clips``."""
        caption = protocol_caption(self.split, self.data)
        if self.speaker_normalised:
            caption += (f"; speaker-normalised, {self.training.enrol} enrolment clips per "
                        "test speaker (not scored)")
        return caption

    def normalisation_arrays(self) -> dict[str, dict[str, np.ndarray]]:
        return {space: {k: np.asarray(v, dtype=np.float32) for k, v in stats.items()}
                for space, stats in self.normalisation.items()}


def protocol_caption(split: dict, data: dict) -> str:
    """What a test figure was measured on, from a card's (or ensemble's) split and data."""
    synth = " (synthetic)" if data.get("synthetic") else ""
    return (f"{split.get('protocol_name', split.get('protocol', '?'))} split on "
            f"{data.get('corpus', '?')}{synth}; {split.get('counts', {}).get('test', '?')} "
            "test clips")


def _plain(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def exposure_note(cards: dict[str, Card], corpus: str, speaker: str) -> str:
    """One sentence per case: did the models (name → card) hear this speaker in training?
    For the Predict page's corpus clips, so a test-set speaker is not called "maybe in the
    training data"."""
    groups: dict[str, list[str]] = {}
    for name, card in cards.items():
        groups.setdefault(card.heard_speaker(corpus, speaker) or "unknown", []).append(name)

    def who(names: list[str]) -> str:
        n = len(names)
        listed = ", ".join(f"`{x}`" for x in names[:3]) + (f" and {n - 3} more" if n > 3
                                                           else "")
        return f"{n} model{'s' if n != 1 else ''} ({listed})"

    lines = []
    if groups.get("test"):
        lines.append(f"a **held-out test speaker** for {who(groups['test'])}: they never "
                     "heard this voice in training, so their answer is a fair test")
    if groups.get("unseen corpus"):
        lines.append(f"from a corpus {who(groups['unseen corpus'])} never trained on")
    heard = groups.get("train", []) + groups.get("val", [])
    if heard:
        lines.append(f"heard in training or validation by {who(heard)}: expect them to do "
                     "better than on a new voice")
    if groups.get("unknown"):
        lines.append(f"possibly in the training data of {who(groups['unknown'])} (random "
                     "split: speakers and clips are shared between training and test)")
    return f"Speaker {speaker} is " + "; ".join(lines) + "." if lines else ""
