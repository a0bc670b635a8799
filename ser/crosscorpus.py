"""Cross-corpus scores: how a model does on every corpus, seen in training or not.

For each test corpus a model gets one cell:

- **unseen**: the corpus had no clip in the model's training data (a CREMA-D model on TESS,
  or a leave-one-corpus-out model on its held-out corpus): every six-emotion clip of it is
  scored;
- **held-out speakers**: the corpus was in the training pool; only its test speakers of the
  model's own split are scored (the report's per-corpus slice).

Every cell carries accuracy, UAR, per-class recall and the share of clips given each label,
so a collapse onto one class ("everything is angry") is visible at a glance. Scores are
stored beside the model as ``cross_corpus.json`` and drawn by the Results page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ser import config
from ser.bundle import Bundle
from ser.fileio import read_json, write_json

FILE = "cross_corpus.json"


@dataclass
class Cell:
    """One model on one test corpus."""

    corpus: str  # corpus key
    kind: str  # "unseen" | "held-out speakers"
    n: int
    accuracy: float
    uar: float
    recall: dict[str, float] = field(default_factory=dict)
    predicted_share: dict[str, float] = field(default_factory=dict)
    #: Speaker-normalised models: enrolment clips per speaker behind the statistics (not
    #: scored); 0 for a model that scores each clip on its own.
    enrol: int = 0
    #: The label shares as they would be on a balanced version of the corpus: each true
    #: class weighted equally (the mean of the row-normalised confusion matrix). Equal to
    #: ``predicted_share`` when the corpus is balanced; on an unbalanced one (SAVEE's
    #: neutral is twice any other emotion) it keeps a class that is merely frequent in the
    #: corpus from looking like a collapse.
    balanced_share: dict[str, float] = field(default_factory=dict)

    @property
    def top_share(self) -> float:
        """Share of clips given the most frequent label (≈ 1/6 when balanced)."""
        return max(self.predicted_share.values()) if self.predicted_share else float("nan")

    @property
    def top_label(self) -> str:
        return max(self.predicted_share, key=self.predicted_share.get) if \
            self.predicted_share else ""


def parse_corpora(items: list[str]) -> dict[str, str]:
    """``{key: folder}`` from ``KEY=FOLDER`` arguments (``--corpus``, repeatable).

    Raises ``ValueError`` for an item without ``=`` and for a key given twice: the key
    names the corpus (its adapter, and whether a model heard it), so two folders under one
    key cannot both be scored in one run, and keeping only the last would be silent.
    """
    corpora: dict[str, str] = {}
    for item in items:
        key, sep, folder = item.partition("=")
        key, folder = key.strip(), folder.strip()
        if not sep or not key or not folder:
            raise ValueError(f"--corpus takes KEY=FOLDER, not {item!r}")
        if key in corpora:
            raise ValueError(f"--corpus {key} is given twice ({corpora[key]} and {folder}); "
                             "score each folder in its own run")
        corpora[key] = folder
    return corpora


def cell(corpus: str, kind: str, y: np.ndarray, pred: np.ndarray) -> Cell:
    """A `Cell` from integer labels ``y`` and predictions ``pred``."""
    present = sorted(set(y.tolist()))
    recall = {config.LABELS[c]: float(np.mean(pred[y == c] == c)) for c in present}
    share = {lab: float(np.mean(pred == i)) for i, lab in enumerate(config.LABELS)}
    balanced = {lab: float(np.mean([np.mean(pred[y == c] == i) for c in present]))
                for i, lab in enumerate(config.LABELS)} if present else {}
    return Cell(corpus, kind, int(len(y)), float(np.mean(pred == y)),
                float(np.mean(list(recall.values()))), recall, share,
                balanced_share=balanced)


def score(bundle: Bundle, corpora: dict[str, str], *, own_data: str | None = None,
          progress=None) -> list[Cell]:
    """One `Cell` per corpus in ``corpora`` (key → folder). ``own_data`` points at the
    model's own training data when it is not where the card says."""
    from ser.dataset import encode_labels
    from ser.evaluation import evaluate_bundle, evaluate_on_corpus

    cells = []
    seen = bundle.card.trained_corpora
    own = None
    for key, folder in corpora.items():
        if key in seen:
            if own is None:
                _, own = evaluate_bundle(bundle, own_data, progress=progress)
            rows = own[own["corpus"] == key] if "corpus" in own else own
            kind = "held-out speakers"
        else:
            _, rows = evaluate_on_corpus(bundle, folder, progress=progress)
            kind = "unseen"
        if not len(rows):
            continue
        y = encode_labels(rows["true"])
        pred = encode_labels(rows["predicted"])
        c = cell(key, kind, y, pred)
        if bundle.card.speaker_normalised:
            c.enrol = int(bundle.card.training.enrol)
        cells.append(c)
    return cells


def scored_clips(bundle: Bundle, key: str, folder: str, part: str = "test"):
    """``(clips, kind)``: the clips a cell of corpus ``key`` scores, as a manifest. For a
    corpus the model trained on, its held-out test speakers of the model's own split (all
    their clips, the card's enrolment clips included; none when every speaker of that
    corpus trained), kind ``"held-out"``; otherwise every six-emotion clip of the corpus
    in ``folder``, kind ``"unseen"``. ``part="val"`` takes the validation speakers of a
    corpus the model trained on instead (kind ``"validation"``). The benchmarks that
    re-score models clip by clip (enrolment, test-time floors) share it."""
    from ser.corpora import load_corpus
    from ser.dataset import card_config, select
    from ser.splits import usable

    if key in bundle.card.trained_corpora:
        sel = select(card_config(bundle.card))
        rows = np.concatenate([getattr(sel.split, part), sel.enrol.get(part, np.zeros(0, int))])
        clips = sel.manifest.iloc[np.sort(rows)].reset_index(drop=True)
        if "corpus" in clips:  # a pool: that corpus's held-out speakers (maybe none)
            clips = clips[clips["corpus"] == key].reset_index(drop=True)
        return clips, "held-out" if part == "test" else "validation"
    corpus = load_corpus(folder)
    return corpus.manifest[usable(corpus.manifest)].reset_index(drop=True), "unseen"


def write(folder: Path, cells: list[Cell]) -> Path:
    path = Path(folder) / FILE
    write_json(path, {"cells": [asdict(c) for c in cells]})
    return path


def read(folder: Path) -> list[Cell]:
    path = Path(folder) / FILE
    if not path.exists():
        return []
    try:
        return [Cell(**c) for c in read_json(path).get("cells", [])]
    except (TypeError, ValueError):
        return []


def unseen_summary(folders: dict[str, Path]) -> str:
    """One sentence for a visitor: how the models in ``folders`` (name → model folder) scored
    on corpora they never heard, from their stored ``cross_corpus.json``; "" when none of
    them was scored that way."""
    parts, pooled = [], []
    for name, folder in folders.items():
        cells = [c for c in read(folder) if c.kind == "unseen" and not c.enrol]
        if not cells:
            heard = _heard(folder)
            if len(heard) > 1:
                pooled.append(f"{name} heard {', '.join(heard)} in training")
            continue
        low, high = min(c.uar for c in cells), max(c.uar for c in cells)
        span = f"{low * 100:.0f} %" if round(low * 100) == round(high * 100) else \
            f"{low * 100:.0f}–{high * 100:.0f} %"
        names = ", ".join(c.corpus.upper() for c in cells)
        parts.append(f"{name}: {span} UAR on {names}")
    text = ("Measured on speech corpora the models never heard (every clip scored; chance is "
            "17 % for six emotions, 25 % for URDU's four): " + "; ".join(parts) + "."
            ) if parts else ""
    if pooled:
        one = len(pooled) == 1
        text += (" " if text else "") + "; ".join(pooled) + (
            f", so no corpus was left to measure {'it' if one else 'them'} on voices "
            f"{'it' if one else 'they'} never heard (README, *Voices from other corpora*: "
            "pooled recipes trained with one corpus left out).")
    return text


def _heard(folder: Path) -> list[str]:
    """Display names of the corpora a model folder's card says it trained on, CREMA-D first
    ([] when the card is missing or unreadable)."""
    from ser.card import Card
    from ser.corpora import display_name

    try:
        keys = Card.from_json(Path(folder) / "card.json").trained_corpora
    except (OSError, ValueError, TypeError, KeyError):
        return []
    return [display_name(k) for k in sorted(keys, key=lambda k: (k != "crema-d", k))]


def score_average(bundles: list[Bundle], corpora: dict[str, str], *, progress=None
                  ) -> list[Cell]:
    """Cells of the average of several models' probabilities (an ensemble) on corpora that
    none of them trained on (each member scores every six-emotion clip)."""
    from ser.dataset import encode_labels
    from ser.evaluation import evaluate_on_corpus

    cells = []
    cols = [f"p_{lab}" for lab in config.LABELS]
    for key, folder in corpora.items():
        if any(key in b.card.trained_corpora for b in bundles):
            continue
        frames = [evaluate_on_corpus(b, folder, progress=progress)[1] for b in bundles]
        if len({tuple(f["clip"]) for f in frames}) > 1:
            raise ValueError("the models score different clips (speaker-normalised models "
                             "leave their enrolment clips out): average like with like")
        probs = np.mean([f[cols].to_numpy() for f in frames], axis=0)
        y = encode_labels(frames[0]["true"])
        cells.append(cell(key, "unseen", y, probs.argmax(1)))
    return cells
