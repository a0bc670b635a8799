"""Collect every trained model (shipped bundles and finished runs) into one table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ser import config
from ser.fileio import read_json, read_jsonl


def _entry(source: str, bundle_path: Path, card: dict, report: dict | None,
           metrics: list[dict], run_id: str | None = None) -> dict:
    return {"name": card.get("name") or bundle_path.stem, "source": source,
            "bundle": str(bundle_path), "card": card, "report": report or {},
            "metrics": metrics, "run_id": run_id}


def shipped_models(folder: Path | None = None) -> list[dict]:
    """Bundles in ``models/`` with their cards, reports (``<name>.report.json``) and
    training curves (``<name>.metrics.jsonl``) when shipped."""
    from ser.bundle import BundleError, find_bundles, read_card

    folder = Path(folder or config.models_dir())
    out = []
    for p in find_bundles(folder):
        try:
            card = read_card(p)
        except (BundleError, ValueError, OSError):
            continue
        rep_path = p.with_name(p.stem + ".report.json")
        report = read_json(rep_path) if rep_path.exists() else None
        out.append(_entry("shipped", p, card, report,
                          read_jsonl(p.with_name(p.stem + ".metrics.jsonl"))))
    return out


def run_models() -> list[dict]:
    """Finished (or cancelled) runs that left a bundle."""
    from ser import runs
    from ser.bundle import BundleError, read_card

    out = []
    for r in runs.list_runs():
        if not r["bundle"] or r["status"]["state"] not in ("finished", "cancelled"):
            continue
        try:
            card = read_card(r["bundle"])
        except (BundleError, ValueError, OSError):
            continue
        card = dict(card)
        card["name"] = f"{card.get('name', card['arch'])} [{r['run_id']}]"
        out.append(_entry("run", Path(r["bundle"]), card, r["report"],
                          runs.metrics(r["run_id"]), r["run_id"]))
    return out


def all_models() -> list[dict]:
    return shipped_models() + run_models()


def table(entries: list[dict]) -> pd.DataFrame:
    """One row per model with its protocol and headline numbers (the Results table)."""
    rows = []
    for e in entries:
        c, rep = e["card"], e["report"]
        tr = c.get("training", {})
        test = rep if rep else c.get("metrics", {}).get("test", {})
        sp = c.get("split", {})
        rows.append({
            "model": e["name"], "source": e["source"], "architecture": c.get("arch"),
            "family": c.get("family"), "features": c.get("input_space", "").upper(),
            "activation": c.get("model_kwargs", {}).get("activation"),
            "lr": tr.get("lr"), "epochs": tr.get("epochs_run"),
            "split": sp.get("protocol_name", sp.get("protocol")),
            "data": (c.get("data", {}).get("corpus", "") +
                     (" (synthetic)" if c.get("data", {}).get("synthetic") else "")),
            "accuracy": test.get("accuracy"), "UAR": test.get("uar"),
            "macro-F1": test.get("macro_f1"), "precision": test.get("macro_precision"),
            "test loss": test.get("loss"), "test clips": test.get("n"),
            "parameters": c.get("params"), "training time (s)": tr.get("train_time_s"),
            "device": tr.get("device"), "display name": c.get("display_name"),
            "epochs planned": tr.get("epochs_planned"), "best epoch": tr.get("best_epoch"),
            "augmentation": c.get("data", {}).get("augmentation"),
        })
    return pd.DataFrame(rows)


def markdown_table(entries: list[dict]) -> str:
    """The README's results table: one row per model, every figure from its report; the
    standard speaker-independent split first, each protocol's models from best to worst."""
    df = table(entries)
    if len(df):
        other = df["split"] != "speaker-independent"
        df = df.assign(_other=other).sort_values(["_other", "accuracy"],
                                                 ascending=[True, False], kind="stable")
    lines = ["| model | architecture | input | split | test acc. | UAR | macro-F1 | precision "
             "| params | epochs run/planned | waveform copies | training time |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|---|---:|"]
    for _, r in df.iterrows():
        lines.append(
            f"| `{r['model']}` | {r['display name']} | {r['features']} | {r['split']} | "
            f"{r['accuracy']:.1%} | {r['UAR']:.1%} | {r['macro-F1']:.3f} | "
            f"{r['precision']:.3f} | {r['parameters']:,} | {r['epochs']}/{r['epochs planned']}"
            f" (best {r['best epoch']}) | {r['augmentation']} | "
            f"{r['training time (s)'] / 60:.1f} min |")
    return "\n".join(lines)


def ship_run(run_id: str, name: str, folder: Path | None = None) -> Path:
    """Publish a finished run into ``models/``: ``NAME.pt`` (+ ``.json`` card),
    ``NAME.report.json``, ``NAME.metrics.jsonl`` and ``NAME.predictions.csv`` (clip names,
    not local paths). Weights are stored as float16 (checked by the caller's evaluation).
    """
    import shutil

    from ser import bundle, runs
    from ser.fileio import atomic_write_text, write_json

    d = runs.run_dir(run_id)
    folder = Path(folder or config.models_dir())
    folder.mkdir(parents=True, exist_ok=True)
    b = bundle.load(d / "model.pt")
    card = dict(b.card)
    card["name"] = name
    dest = folder / f"{name}.pt"
    bundle.save(dest, b.model, card, half=True)
    report = read_json(d / "report.json")
    # Re-evaluate the float16 file itself on the same test clips: the shipped numbers must
    # be those of the shipped weights.
    from ser.evaluation import evaluate_bundle

    cfg = read_json(d / "config.json")
    half_report, _ = evaluate_bundle(bundle.load(dest), cfg.get("data"),
                                     split=cfg.get("split"))
    report["float16_check"] = {"accuracy_float32": report["accuracy"],
                               "accuracy_float16": half_report["accuracy"],
                               "uar_float32": report["uar"], "uar_float16": half_report["uar"]}
    write_json(folder / f"{name}.report.json", report)
    shutil.copy(d / "metrics.jsonl", folder / f"{name}.metrics.jsonl")
    preds = pd.read_csv(d / "predictions.csv").drop(columns=["path"], errors="ignore")
    atomic_write_text(folder / f"{name}.predictions.csv", preds.to_csv(index=False,
                                                                      float_format="%.5f"))
    write_val_predictions(dest, cfg.get("data"), split=cfg.get("split"))
    return dest


def val_predictions_path(bundle_path: Path) -> Path:
    bundle_path = Path(bundle_path)
    return bundle_path.with_name(bundle_path.stem + ".val_predictions.csv")


def write_val_predictions(bundle_path: Path, data: str | None = None, *,
                          split: str | None = None) -> Path:
    """Score a shipped bundle on its split's *validation* clips and save the per-clip
    probabilities next to it (``NAME.val_predictions.csv``): what ensemble selection reads,
    so that choosing members never looks at the test clips."""
    from ser import bundle
    from ser.evaluation import evaluate_bundle
    from ser.fileio import atomic_write_text

    _, preds = evaluate_bundle(bundle.load(bundle_path), data, split=split, part="val")
    preds = preds.drop(columns=["path"], errors="ignore")
    out = val_predictions_path(bundle_path)
    atomic_write_text(out, preds.to_csv(index=False, float_format="%.5f"))
    return out


ENSEMBLE_FILE = "ensemble.json"


def _probs_of(frames: list[pd.DataFrame], what: str) -> tuple[np.ndarray, np.ndarray]:
    """The labels and the members' stacked probabilities ``(members, clips, classes)``."""
    clips = frames[0]["clip"].tolist()
    if any(f["clip"].tolist() != clips for f in frames):
        raise ValueError(f"The members were scored on different {what} clips; cannot "
                         "ensemble.")
    cols = [f"p_{lab}" for lab in config.LABELS]
    y = frames[0]["true"].map({lab: i for i, lab in enumerate(config.LABELS)}).to_numpy()
    return y, np.stack([f[cols].to_numpy() for f in frames])


def best_prefix(y: np.ndarray, probs: np.ndarray, max_size: int | None = None
                ) -> tuple[int, list[float]]:
    """``probs`` ``(members, clips, classes)`` ranked best-first: the size ``k`` of the
    leading group whose averaged probabilities score the highest UAR on ``y`` (at most
    ``max_size``), and the UAR of every prefix. One number is chosen, so little can be
    fitted to the noise of a small validation set (ties go to the smaller group)."""
    from ser.evaluation import classification_metrics

    limit = min(max_size or len(probs), len(probs))
    path = [classification_metrics(y, probs[:k].mean(0))["uar"] for k in range(1, limit + 1)]
    return int(np.argmax(path)) + 1, path


def build_ensemble(entries: list[dict], *, top: int | None = None, split: str = "speaker"
                   ) -> dict:
    """Choose an ensemble of shipped models on one split protocol using *validation* data
    only, then score the average of their probabilities on their shared test clips.

    Candidates are ranked by their own best validation UAR. When every candidate has
    validation predictions (``NAME.val_predictions.csv``, written at shipping), the ensemble
    is the leading group of that ranking whose average scores the best validation UAR (at
    least 2, at most ``top`` members). Otherwise the ``top`` (default 3) leading models are
    averaged. Returns the ensemble card.
    """
    from ser.evaluation import classification_metrics

    pool = [e for e in entries if e["source"] == "shipped"
            and e["card"].get("split", {}).get("protocol") == split]
    pool.sort(key=lambda e: (-e["card"].get("metrics", {}).get("val_uar_best", 0),
                             e["name"]))
    if len(pool) < 2:
        raise ValueError("An ensemble needs at least two shipped models on the same split.")
    val_paths = [val_predictions_path(Path(e["bundle"])) for e in pool]
    val_uar = None
    if all(p.exists() for p in val_paths):
        y_val, p_val = _probs_of([pd.read_csv(p) for p in val_paths], "validation")
        k, path = best_prefix(y_val, p_val, top)
        k = max(k, 2)  # an ensemble has at least two members
        members = pool[:k]
        val_uar = path[k - 1]
        selection = (f"the {k} shipped models with the best validation UAR; {k} = the group "
                     f"size (of 2–{len(path)}) whose average scores the best validation UAR; "
                     "test clips unseen")
    else:
        k = top or 3
        members = pool[:k]
        selection = f"top {k} shipped models by best validation UAR (test unseen)"
    frames = []
    for e in members:
        p = Path(e["bundle"])
        frames.append(pd.read_csv(p.with_name(p.stem + ".predictions.csv")))
    y, probs = _probs_of(frames, "test")
    metrics = classification_metrics(y, probs.mean(0))
    c0 = members[0]["card"]
    card = {"name": f"ensemble.crema-{'si' if split == 'speaker' else split}",
            "members": [e["name"] for e in members],
            "selection": selection,
            "split": c0.get("split", {}), "data": c0.get("data", {}),
            "metrics": {"test": {k: metrics[k] for k in ("n", "accuracy", "uar", "macro_f1",
                                                         "macro_precision", "loss")}},
            "confusion_matrix": metrics["confusion_matrix"],
            "per_class": metrics["per_class"]}
    if val_uar is not None:
        card["metrics"]["val_uar"] = val_uar
    return card


def read_ensemble(folder: Path | None = None) -> dict | None:
    p = Path(folder or config.models_dir()) / ENSEMBLE_FILE
    try:
        return read_json(p) if p.exists() else None
    except ValueError:
        return None
