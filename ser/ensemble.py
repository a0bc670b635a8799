"""Ensembles of shipped models, chosen on validation data only.

Rule (fixed before the members were trained): rank the shipped models of one split
protocol by their own best validation UAR; the ensemble is the leading group of that
ranking whose averaged probabilities score the best validation UAR (at least two members).
Its test figures come from the members' stored test predictions, which selection never
reads.

Calibration: the app averages the members' *calibrated* probabilities (each member's own
temperature), so the ensemble's temperature and "uncertain" threshold are fitted on the
average of the members' calibrated validation probabilities (`calibrate_ensemble`) and
stored in ``ensemble.json``. They apply only when exactly the members are averaged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser import config
from ser.card import Scores, protocol_caption
from ser.fileio import read_json, write_json
from ser.metrics import classification_metrics
from ser.names import BUNDLE_FILE, ENSEMBLE_FILE, bundle_files
from ser.zoo import ModelEntry, shipped_models


@dataclass
class Ensemble:
    """A shipped ensemble: members, how they were chosen, and its test figures."""

    name: str
    members: list[str]
    selection: str
    split: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    confusion_matrix: list = field(default_factory=list)
    per_class: dict = field(default_factory=dict)
    #: Scores on corpora none of the members trained on (`ser.crosscorpus.Cell` dicts).
    cross_corpus: list = field(default_factory=list)
    #: `ser.calibration.Calibration.to_dict()` of the averaged members (see the module
    #: docstring), or None before ``python -m ser calibrate --write``.
    calibration: dict | None = None

    @property
    def test(self) -> Scores | None:
        return Scores.from_dict(self.metrics.get("test"))

    @property
    def val_uar(self) -> float | None:
        return self.metrics.get("val_uar")

    def protocol_caption(self) -> str:
        return protocol_caption(self.split, self.data)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Ensemble:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _probs_of(frames: list[pd.DataFrame], what: str) -> tuple[np.ndarray, np.ndarray]:
    """The labels and the members' stacked probabilities ``(members, clips, classes)``."""
    clips = frames[0]["clip"].tolist()
    if any(f["clip"].tolist() != clips for f in frames):
        raise ValueError(f"The members were scored on different {what} clips; cannot "
                         "ensemble.")
    cols = [f"p_{lab}" for lab in config.LABELS]
    y = frames[0]["true"].map({lab: i for i, lab in enumerate(config.LABELS)}).to_numpy()
    return y, np.stack([f[cols].to_numpy() for f in frames])


def clip_key(frame: pd.DataFrame) -> pd.Series:
    """Each row's clip as ``corpus/name``: a pooled model's predictions name clips with
    their corpus (``crema-d/1010_DFA_ANG_XX``), a one-corpus model's without it."""
    name = frame["clip"].astype(str).str.split("/").str[-1]
    corpus = (frame["corpus"].astype(str) if "corpus" in frame
              else pd.Series("", index=frame.index))
    return corpus + "/" + name


def shared_clips(frames: list[pd.DataFrame], what: str) -> list[pd.DataFrame]:
    """The frames cut to the clips every one of them scored, in one order: members trained
    on different splits (a pooled model and a CREMA-D one) share only some held-out clips
    (CREMA-D's test actors are test clips in both)."""
    keys = [clip_key(f) for f in frames]
    common = set(keys[0])
    for k in keys[1:]:
        common &= set(k)
    if not common:
        raise ValueError(f"The members share no {what} clip (their splits hold out "
                         "different speakers); they cannot be scored together.")
    order = [k for k in keys[0] if k in common]
    return [f.assign(_key=k.to_numpy()).drop_duplicates("_key").set_index("_key")
            .loc[order].reset_index(drop=True) for f, k in zip(frames, keys)]


def best_prefix(y: np.ndarray, probs: np.ndarray, max_size: int | None = None
                ) -> tuple[int, list[float]]:
    """``probs`` ``(members, clips, classes)`` ranked best-first: the size ``k`` of the
    leading group whose averaged probabilities score the highest UAR on ``y`` (at most
    ``max_size``), and the UAR of every prefix. One number is chosen, so little can be
    fitted to the noise of a small validation set (ties go to the smaller group)."""
    limit = min(max_size or len(probs), len(probs))
    path = [classification_metrics(y, probs[:k].mean(0))["uar"] for k in range(1, limit + 1)]
    return int(np.argmax(path)) + 1, path


def build_ensemble(entries: list[ModelEntry], *, top: int | None = None,
                   split: str = "speaker", corpus: str = "CREMA-D") -> Ensemble:
    """Choose an ensemble of shipped models on one split protocol using *validation* data
    only (see the module docstring), then score the average of their probabilities on
    their shared test clips. Without validation predictions for every candidate, the
    ``top`` (default 3) leading models are averaged."""
    # Members must have been scored on the same clips: one protocol on one corpus, and no
    # speaker-normalised model (its enrolment clips are left out of scoring, and it needs
    # a voice profile the ensemble's users may not have).
    pool = [e for e in entries if e.source == "shipped" and e.card.protocol == split
            and e.card.corpus == corpus and not e.card.speaker_normalised]
    pool.sort(key=lambda e: (-e.card.val_uar_best, e.name))
    if len(pool) < 2:
        raise ValueError("An ensemble needs at least two shipped models on the same split.")
    val_frames = [e.predictions("val") for e in pool]
    val_uar = None
    if all(f is not None for f in val_frames):
        y_val, p_val = _probs_of(val_frames, "validation")
        k, path = best_prefix(y_val, p_val, top)
        k = max(k, 2)  # an ensemble has at least two members
        val_uar = path[k - 1]
        selection = (f"the {k} shipped models with the best validation UAR; {k} = the group "
                     f"size (of 2–{len(path)}) whose average scores the best validation UAR; "
                     "test clips unseen")
    else:
        k = top or 3
        selection = f"top {k} shipped models by best validation UAR (test unseen)"
    members = pool[:k]
    y, probs = _probs_of([e.predictions("test") for e in members], "test")
    m = classification_metrics(y, probs.mean(0))
    c0 = members[0].card
    metrics = {"test": {key: m[key] for key in ("n", "accuracy", "uar", "macro_f1",
                                                "macro_precision", "loss")}}
    if val_uar is not None:
        metrics["val_uar"] = val_uar
    return Ensemble(name=f"ensemble.crema-{'si' if split == 'speaker' else split}",
                    members=[e.name for e in members], selection=selection,
                    split=c0.split, data=c0.data, metrics=metrics,
                    confusion_matrix=m["confusion_matrix"], per_class=m["per_class"])


def read_ensemble(folder: Path | None = None) -> Ensemble | None:
    p = Path(folder or config.models_dir()) / ENSEMBLE_FILE
    try:
        return Ensemble.from_dict(read_json(p)) if p.exists() else None
    except (ValueError, TypeError):
        return None


def write_ensemble(ens: Ensemble, folder: Path | None = None) -> Path:
    p = Path(folder or config.models_dir()) / ENSEMBLE_FILE
    write_json(p, ens.to_dict())
    return p


# ------------------------------------------------------------------------ calibration

def _member_calibration(entry: ModelEntry, given: dict | None):
    from ser.calibration import Calibration

    if given is not None and entry.name in given:
        return given[entry.name]
    record = entry.card.calibration
    return Calibration.from_dict(record) if record else None


def member_probs(ens: Ensemble, entries: list[ModelEntry], part: str = "val", *,
                 calibrations: dict | None = None, calibrated: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The labels and the average of the members' probabilities on their stored ``part``
    ("val" or "test") predictions: ``(y (N,), probs (N, C))``.

    With ``calibrated`` (default) each member's probabilities are first temperature-scaled
    with ``calibrations[name]`` when given, else with its card's calibration, else left as
    they are (T = 1), exactly as `ser.inference.analyse` does before averaging.
    """
    by_name = {e.name: e for e in entries}
    missing = [n for n in ens.members if n not in by_name]
    if missing:
        raise ValueError(f"ensemble members not found among the shipped models: {missing}")
    members = [by_name[n] for n in ens.members]
    frames = [e.predictions(part) for e in members]
    absent = [e.name for e, f in zip(members, frames) if f is None]
    if absent:
        what = "validation" if part == "val" else "test"
        raise ValueError(f"no stored {what} predictions for {absent}")
    y, _ = _probs_of(frames, "validation" if part == "val" else "test")
    return y, np.mean(scaled_probs(members, frames, calibrations, calibrated=calibrated),
                      axis=0)


def scaled_probs(members: list[ModelEntry], frames: list[pd.DataFrame],
                 calibrations: dict | None = None, *, calibrated: bool = True
                 ) -> list[np.ndarray]:
    """Each member's stored probabilities, temperature-scaled as the page does (see
    `member_probs`)."""
    from ser.calibration import apply_temperature, log_probs, prediction_arrays

    out = []
    for e, f in zip(members, frames):
        p, _ = prediction_arrays(f)
        cal = _member_calibration(e, calibrations) if calibrated else None
        out.append(apply_temperature(log_probs(p), cal.temperature) if cal else p)
    return out


def calibrate_ensemble(ens: Ensemble, entries: list[ModelEntry], *,
                       calibrations: dict | None = None, target_precision: float = 0.7):
    """Temperature and "uncertain" threshold of the ensemble, fitted on the average of its
    members' calibrated validation probabilities (see `member_probs`). Returns a
    `ser.calibration.Calibration`; store it with ``ens.calibration = cal.to_dict()`` and
    `write_ensemble`.

    Its ``ece_before`` is that of the plain average of the members' softmax outputs (what
    the app showed before any calibration) and ``ece_after`` that of the whole chain
    (members' temperatures, average, ensemble temperature), both on the validation clips.
    """
    from dataclasses import replace

    from ser.calibration import calibrate, expected_calibration_error, log_probs

    y, avg = member_probs(ens, entries, "val", calibrations=calibrations)
    _, raw = member_probs(ens, entries, "val", calibrated=False)
    cal = calibrate(log_probs(avg), y, target_precision=target_precision)
    return replace(cal, ece_before=expected_calibration_error(raw, y))


def ensemble_reliability(ens: Ensemble, entries: list[ModelEntry], *, part: str = "test",
                         n_bins: int = 15) -> dict:
    """Reliability data of the ensemble (same dict as `ser.calibration.reliability_for`) on
    the stored ``part`` predictions (test by default: clips no temperature was fitted on).
    "Before" is the plain average of the members' softmax outputs; "after" the whole chain
    the app applies: each member's temperature, the average, the ensemble's temperature.
    """
    from ser.calibration import Calibration, apply_temperature, log_probs, reliability_from

    y, raw = member_probs(ens, entries, part, calibrated=False)
    cal = Calibration.from_dict(ens.calibration) if ens.calibration else None
    after = None
    if cal is not None:
        after = apply_temperature(log_probs(member_probs(ens, entries, part)[1]),
                                  cal.temperature)
    return reliability_from(raw, y, cal, after=after, name=ens.name, part=part,
                            n_bins=n_bins)


DEFAULT_FILE = "default.json"


def default_models(folder: Path | None = None, *, voice: bool = False
                   ) -> tuple[list[str], str]:
    """The shipped models the Predict page selects by default, and why.

    ``models/default.json`` (``{"models": [...], "why": "...", "voice": {"models": [...],
    "why": "..."}}``) names them when present; ``voice=True`` asks for the set used once the
    visitor calibrated to their voice (speaker-normalised models), falling back to the
    usual set. Without the file: the shipped ensemble's members; otherwise every shipped
    model.
    """
    root = Path(folder or config.models_dir())
    shipped = {e.name for e in shipped_models(root)}
    path = root / DEFAULT_FILE
    if path.exists():
        try:
            d = read_json(path)
            for entry in ([d.get("voice") or {}] if voice else []) + [d]:
                names = [n for n in entry.get("models", []) if n in shipped]
                if names:
                    return names, str(entry.get("why", ""))
        except (ValueError, AttributeError):
            pass
    ens = read_ensemble(root)
    if ens is not None:
        names = [n for n in ens.members if n in shipped]
        if names:
            return names, f"the shipped ensemble ({ens.selection})"
    return sorted(shipped), "every shipped model"


def bundle_paths(arg: str, *, voice: bool = False) -> list[Path]:
    """Bundle files named by ``arg``: what `ser.names.bundle_files` resolves (a ``.pt``
    file, a model folder, a folder of model folders, ``ensemble``, a shipped model's name),
    and ``default`` (the Predict page's default models; ``voice=True``: the set it uses once
    a voice is calibrated)."""
    if arg == "default" and not Path(arg).exists():
        return [config.models_dir() / n / BUNDLE_FILE
                for n in default_models(voice=voice)[0]]
    return bundle_files(arg)
