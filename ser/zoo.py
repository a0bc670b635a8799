"""The model zoo: shipped models and finished runs, in one layout, as typed entries.

Every trained model lives in a folder of its own, the same for a shipped model
(``models/<name>/``) and a run (``runs/<run-id>/``)::

    model.pt             the bundle (weights + card)
    card.json            the card, readable without torch
    report.json          test metrics, slices, confusion matrix
    metrics.jsonl        the training curves
    predictions.csv      one row per test clip
    val_predictions.csv  one row per validation clip (shipped models; the ensemble is
                         chosen on these)

Names follow timm's ``architecture.tag`` (``ser2d.crema-si-pitch-x3``):
``list_pretrained("ser2d.*")`` and ``load_pretrained(name)`` are the way in.
"""

from __future__ import annotations

import fnmatch
import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ser import config
from ser.bundle import Bundle, BundleError, load_bundle, read_card, save_bundle
from ser.card import Card, Scores
from ser.fileio import atomic_write_text, file_stamp, read_json, read_jsonl, safe_name, write_json
from ser.names import BUNDLE_FILE

#: `table` column of the human baseline (`ser.metrics.HUMAN_VOICE_RULE`) on a model's own
#: test clips.
HUMAN_COLUMN = "human, voice only, same test clips"
FILES = ("model.pt", "card.json", "report.json", "metrics.jsonl", "predictions.csv",
         "val_predictions.csv")


@dataclass
class ModelEntry:
    """One trained model: where it is, its card, report and curves."""

    name: str
    source: str  # "shipped" | "run"
    bundle: Path
    card: Card
    report: dict = field(default_factory=dict)
    run_id: str | None = None

    @property
    def curves(self) -> list[dict]:
        """The training log (``metrics.jsonl``), read when first asked for: listing every
        model must not parse every model's thousands of step records."""
        return _curves(self.folder / "metrics.jsonl")

    @property
    def folder(self) -> Path:
        return self.bundle.parent

    @property
    def scores(self) -> Scores | None:
        """Test figures: the report's (of the stored weights) when there is one, else the
        card's (recorded at training time)."""
        return Scores.from_dict(self.report) or self.card.test

    def predictions(self, part: str = "test") -> pd.DataFrame | None:
        """Per-clip predictions on the test (or ``"val"``) clips, if stored."""
        path = self.folder / ("predictions.csv" if part == "test" else "val_predictions.csv")
        return pd.read_csv(path) if path.exists() else None


def _curves(path: Path) -> list[dict]:
    key = (str(path), file_stamp(path))
    if key not in _CURVES:
        if len(_CURVES) > 256:
            _CURVES.clear()
        _CURVES[key] = read_jsonl(path)
    return _CURVES[key]


_CURVES: dict[tuple, list[dict]] = {}
_ENTRIES: dict[tuple, ModelEntry | None] = {}


def _entry(folder: Path, source: str, run_id: str | None = None) -> ModelEntry | None:
    """The model in ``folder``; read again only when its bundle, card or report changed
    (pages list every model on each rerun)."""
    path = folder / BUNDLE_FILE
    key = (str(folder), source, run_id, file_stamp(path), file_stamp(folder / "card.json"),
           file_stamp(folder / "report.json"))
    if key not in _ENTRIES:
        if len(_ENTRIES) > 512:
            _ENTRIES.clear()
        _ENTRIES[key] = _read_entry(folder, source, run_id)
    entry = _ENTRIES[key]
    return None if entry is None else replace(entry, report=dict(entry.report))


def _read_entry(folder: Path, source: str, run_id: str | None) -> ModelEntry | None:
    path = folder / BUNDLE_FILE
    if not path.exists():
        return None
    try:
        card = read_card(path)
    except (BundleError, ValueError, OSError):
        return None
    report = {}
    if (folder / "report.json").exists():
        try:
            report = read_json(folder / "report.json")
        except ValueError:
            report = {}
    return ModelEntry(card.name or folder.name, source, path, card, report, run_id)


def shipped_models(folder: Path | None = None) -> list[ModelEntry]:
    """Every model folder under ``models/`` (sorted by name)."""
    root = Path(folder or config.models_dir())
    if not root.is_dir():
        return []
    entries = [_entry(d, "shipped") for d in sorted(root.iterdir()) if d.is_dir()]
    return [e for e in entries if e is not None]


def run_models() -> list[ModelEntry]:
    """Finished (or cancelled) runs that left a bundle; named ``<card name> [<run id>]``."""
    from ser import runs

    out = []
    for r in runs.list_runs():
        if not r["bundle"] or r["status"]["state"] not in ("finished", "cancelled"):
            continue
        e = _entry(Path(r["bundle"]).parent, "run", r["run_id"])
        if e is not None:
            e.name = f"{e.card.name} [{r['run_id']}]"
            out.append(e)
    return out


def all_models() -> list[ModelEntry]:
    return shipped_models() + run_models()


def list_pretrained(pattern: str = "*", folder: Path | None = None) -> list[str]:
    """Names of shipped models matching a wildcard ``pattern`` (``"ser2d.*"``)."""
    return [e.name for e in shipped_models(folder) if fnmatch.fnmatch(e.name, pattern)]


def load_pretrained(name: str, folder: Path | None = None) -> Bundle:
    """Load the shipped model ``name`` (see `list_pretrained`)."""
    try:
        safe_name(name, "model name")
    except ValueError as err:
        raise BundleError(str(err)) from None
    path = Path(folder or config.models_dir()) / name / BUNDLE_FILE
    if not path.exists():
        known = list_pretrained(folder=folder)
        raise BundleError(f"No shipped model {name!r}; shipped: {', '.join(known) or 'none'}.")
    return load_bundle(path)


# ------------------------------------------------------------------------ tables

def table(entries: list[ModelEntry]) -> pd.DataFrame:
    """One row per model with its protocol and headline numbers (the Results table)."""
    rows = []
    for e in entries:
        c, s, run = e.card, e.scores, e.card.run
        rows.append({
            "model": e.name, "source": e.source, "architecture": c.arch,
            "family": c.family, "features": c.input_space.upper(),
            "activation": c.model_kwargs.get("activation"),
            "lr": c.training.lr, "epochs": run.get("epochs_run"),
            "split": c.protocol_name + (
                f", speaker-normalised ({c.training.enrol} enrolment clips per test speaker, "
                "not scored)" if c.speaker_normalised else ""),
            "data": c.corpus + (" (synthetic)" if c.synthetic else "") + (
                f"; test: {c.split['test_corpus']}, unseen" if c.split.get("test_corpus")
                else ""),
            "accuracy": s.accuracy if s else None, "UAR": s.uar if s else None,
            "macro-F1": s.macro_f1 if s else None,
            "precision": s.macro_precision if s else None,
            "test loss": s.loss if s else None, "test clips": s.n if s else None,
            "parameters": c.params, "training time (s)": run.get("train_time_s"),
            "device": run.get("device"), "display name": c.display_name,
            "epochs planned": run.get("epochs_planned"), "best epoch": run.get("best_epoch"),
            "augmentation": c.augmentation,
            "teachers": _teachers_text(c),
            "started from": _init_text(c),
            "weight average": _swa_text(run),
            "corpus adversary": _adversary_text(run),
            HUMAN_COLUMN: e.report.get("human_voice_accuracy"),
        })
    return pd.DataFrame(rows)


def _adversary_text(run: dict) -> str | None:
    """A corpus-adversarial run, e.g. ``"weight 0.5; its classifier named the corpus of
    71 % → 34 % of training clips (first → last epoch)"``; None otherwise."""
    adv = run.get("adversary")
    if not isinstance(adv, dict) or "weight" not in adv:
        return None
    text = f"weight {adv['weight']:g}"
    if "corpus_accuracy_last_epoch" in adv:
        text += (f"; its classifier named the corpus of "
                 f"{100 * adv['corpus_accuracy_first_epoch']:.0f} % → "
                 f"{100 * adv['corpus_accuracy_last_epoch']:.0f} % of training clips "
                 "(first → last epoch)")
    return text


def _swa_text(run: dict) -> str | None:
    """What weight averaging did, e.g. ``"kept: last 6 epochs, val UAR 66.1 % vs 65.3 %"``."""
    swa = run.get("swa")
    if not isinstance(swa, dict) or "val_uar" not in swa:
        return None
    verdict = "kept" if swa.get("kept") else "not kept"
    return (f"{verdict}: last {swa.get('epochs')} epochs, val UAR {100 * swa['val_uar']:.1f} % "
            f"vs best epoch {100 * swa.get('best_epoch_val_uar', float('nan')):.1f} %")


def _init_text(card) -> str | None:
    """The model a warm-started run began with (``--init``), e.g. ``"ser2d.crema-si"``, with
    the first 12 hex digits of its weights' digest; None for a run from random weights."""
    spec = getattr(card.training, "init", "")
    if not spec:
        return None
    sha = str(card.data.get("init", {}).get("weights_sha256", ""))[:12]
    return f"{spec} (weights {sha})" if sha else spec


def _teachers_text(card) -> str | None:
    """Who a distilled model learnt from, e.g. ``"ensemble (13 models)"``; None otherwise."""
    spec = getattr(card.training, "teachers", "")
    if not spec:
        return None
    n = len(card.data.get("teachers", []))
    return f"{spec} ({n} model{'s' * (n != 1)})" if n else spec


SPEAKER_INDEPENDENT = "speaker-independent"


def protocol_groups(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (split, data) groups of a `table`, the story to open on first: speaker-
    independent groups before the others, then the group with most models, then by name.
    Scores are only comparable inside one group."""
    if not len(df):
        return []
    sizes = df.groupby(["split", "data"], sort=False).size()
    return sorted(sizes.index, key=lambda g: (g[0] != SPEAKER_INDEPENDENT, -sizes[g],
                                              str(g)))


def ranked(df: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """``df`` grouped as `protocol_groups` orders them, best ``metric`` first inside each
    group (models without a score last)."""
    if not len(df):
        return df
    order = {g: i for i, g in enumerate(protocol_groups(df))}
    key = [order[(s, d)] for s, d in zip(df["split"], df["data"])]
    return (df.assign(_group=key).sort_values(["_group", metric], ascending=[True, False],
                                              kind="stable", na_position="last")
            .drop(columns="_group"))


OURS, SEEDS = "SER Studio architectures", "Seed architectures (the notebooks)"


def architecture_origin(arch: str) -> str:
    """`OURS` for SER Studio's own designs, `SEEDS` for those rebuilt from the seeds."""
    from ser.models import model_class

    try:
        return OURS if model_class(arch).source == "SER Studio" else SEEDS
    except (KeyError, ValueError, AttributeError):
        return SEEDS


def leaderboard(entries: list[ModelEntry], ensemble=None) -> pd.DataFrame:
    """The Home page's table of shipped models: SER Studio's architectures, then the
    seeds'; inside each, the speaker-independent models first and best first (`ranked`).
    A shipped ensemble (`ser.ensemble.Ensemble`) heads our group."""
    df = table(entries)
    if not len(df):
        return df
    df["origin"] = [architecture_origin(a) for a in df["architecture"]]
    if ensemble is not None:
        t = ensemble.test
        df = pd.concat([pd.DataFrame([{
            "model": ensemble.name, "display name": f"average of {len(ensemble.members)} "
            "models", "features": "", "accuracy": t.accuracy, "UAR": t.uar,
            "split": ensemble.split.get("protocol_name", ""),
            "data": ensemble.data.get("corpus", ""), "origin": OURS}]), df],
            ignore_index=True)
    parts = [ranked(df[df["origin"] == o]) for o in (OURS, SEEDS)]
    if ensemble is not None:  # the ensemble first in its group, whatever its score
        parts[0] = pd.concat([parts[0][parts[0]["model"] == ensemble.name],
                              parts[0][parts[0]["model"] != ensemble.name]])
    return pd.concat(parts, ignore_index=True)[
        ["origin", "model", "display name", "features", "accuracy", "UAR", "split", "data"]]


def markdown_table(entries: list[ModelEntry]) -> str:
    """The README's results table: one row per model, every figure from its report; the
    standard speaker-independent split first, each protocol's models from best to worst."""
    df = table(entries)
    if len(df):
        # CREMA-D's standard split first (the seeds' benchmark), then other protocols and
        # data; inside each group from best to worst.
        group = (df["split"] != "speaker-independent").astype(int) * 2 + (
            df["data"] != "CREMA-D").astype(int)
        df = df.assign(_group=group).sort_values(["_group", "accuracy"],
                                                 ascending=[True, False], kind="stable")
    lines = ["| model | architecture | input | split | data | test acc. | UAR | macro-F1 | "
             "precision | params | epochs run/planned | waveform copies | training time |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---|---|---:|"]
    for _, r in df.iterrows():
        lines.append(
            f"| `{r['model']}` | {r['display name']} | {r['features']} | {r['split']} | "
            f"{r['data']} | "
            f"{r['accuracy']:.1%} | {r['UAR']:.1%} | {r['macro-F1']:.3f} | "
            f"{r['precision']:.3f} | {r['parameters']:,} | {r['epochs']}/{r['epochs planned']}"
            f" (best {r['best epoch']}) | {r['augmentation']} | "
            f"{r['training time (s)'] / 60:.1f} min |")
    return "\n".join(lines)


# ------------------------------------------------------------------------ shipping

def ship_run(run_id: str, name: str, folder: Path | None = None, *,
             data: str | None = None) -> Path:
    """Publish a finished run as ``models/<name>/``: the bundle with float16 weights, its
    card, the report (with the float16 check), curves, and per-clip predictions on the test
    and validation clips (clip names, not local paths). Returns the bundle path."""
    from ser import runs
    from ser.evaluation import evaluate_bundle

    safe_name(name, "model name")
    d = runs.run_dir(run_id)
    dest_dir = Path(folder or config.models_dir()) / name
    dest_dir.mkdir(parents=True, exist_ok=True)
    b = load_bundle(d / BUNDLE_FILE)
    b.card.name = name
    dest = save_bundle(dest_dir / BUNDLE_FILE, b.model, b.card, half=True)
    report = read_json(d / "report.json")
    # Re-evaluate the float16 file itself on the same clips: the shipped numbers must be
    # those of the shipped weights.
    shipped = load_bundle(dest)
    half_report, _ = evaluate_bundle(shipped, data)
    report["float16_check"] = {"accuracy_float32": report["accuracy"],
                               "accuracy_float16": half_report["accuracy"],
                               "uar_float32": report["uar"], "uar_float16": half_report["uar"]}
    write_json(dest_dir / "report.json", report)
    shutil.copy(d / "metrics.jsonl", dest_dir / "metrics.jsonl")
    preds = pd.read_csv(d / "predictions.csv").drop(columns=["path"], errors="ignore")
    atomic_write_text(dest_dir / "predictions.csv", preds.to_csv(index=False,
                                                                 float_format="%.5f"))
    write_val_predictions(shipped, data)
    return dest


def write_val_predictions(bundle: Bundle, data: str | None = None) -> Path:
    """Score a shipped bundle on its split's *validation* clips and save the per-clip
    probabilities beside it (``val_predictions.csv``): what ensemble selection reads, so
    choosing members never looks at the test clips."""
    from ser.evaluation import evaluate_bundle

    _, preds = evaluate_bundle(bundle, data, part="val")
    out = bundle.path.parent / "val_predictions.csv"
    atomic_write_text(out, preds.drop(columns=["path"], errors="ignore")
                      .to_csv(index=False, float_format="%.5f"))
    return out



# ------------------------------------------------------------------------ calibration

def calibrate_entry(entry: ModelEntry, *, target_precision: float = 0.7):
    """Fit temperature scaling and the "uncertain" threshold of ``entry`` on its stored
    validation predictions (``val_predictions.csv``; the log of the probabilities serve as
    logits). Returns a `ser.calibration.Calibration`, or None when the model has no
    validation predictions."""
    from ser.calibration import calibrate, log_probs, prediction_arrays

    frame = entry.predictions("val")
    if frame is None or not len(frame):
        return None
    probs, y = prediction_arrays(frame)
    return calibrate(log_probs(probs), y, target_precision=target_precision)


def write_calibration(path: str | Path, calibration) -> bool:
    """Store ``calibration`` in the card of the bundle at ``path``: ``model.pt`` is re-saved
    (same weights, same dtype) and its ``card.json`` rewritten. ``calibration`` is a
    `ser.calibration.Calibration` or its dict; None removes a stored one.

    Returns False, and touches no file, when the card already holds this calibration (every
    number equal to 1e-9): re-saving an older bundle would otherwise rewrite both files with
    the newer card layout although nothing changed. True when written.

    Raises `BundleError` (and writes nothing) if re-saving would change the weights, and
    after writing checks that the file reads back with its original weights digest.
    """
    import torch

    from ser.bundle import read, weights_digest

    path = Path(path)
    b = load_bundle(path)
    card = b.card
    record = calibration.to_dict() if hasattr(calibration, "to_dict") else calibration
    if same_calibration(card.calibration, record):
        return False
    digest = card.extra.get("weights_sha256")
    half = card.extra.get("weights_dtype") == "float16"
    # The exact state save_bundle will write: float32 in memory, cast back when stored as
    # float16 (a lossless round trip, so the digest must come out the same).
    state = {k: v.detach().cpu().clone() for k, v in b.model.state_dict().items()}
    if half:
        state = {k: v.to(torch.float16) if v.is_floating_point() else v
                 for k, v in state.items()}
    if weights_digest(state) != digest:
        raise BundleError(f"{path}: re-saving would change the weights (digest mismatch); "
                          "calibration not written.")
    card.calibration = dict(record) if record is not None else None
    save_bundle(path, b.model, card, half=half)
    stored, _ = read(path)
    if stored.get("weights_sha256") != digest:  # pragma: no cover - guarded above
        raise BundleError(f"{path}: the weights digest changed while writing the calibration.")
    return True


def same_calibration(a: dict | None, b: dict | None) -> bool:
    """Whether two calibration records (dicts, or None for "not calibrated") say the same:
    the same keys, equal strings and numbers equal to a relative 1e-9."""
    if a is None or b is None:
        return a is None and b is None
    if set(a) != set(b):
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, str) or isinstance(other, str):
            if value != other:
                return False
        elif not math.isclose(float(value), float(other), rel_tol=1e-9, abs_tol=1e-12):
            return False
    return True
