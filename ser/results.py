"""Collect every trained model (shipped bundles and finished runs) into one table."""

from __future__ import annotations

from pathlib import Path

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
            "device": tr.get("device"),
        })
    return pd.DataFrame(rows)


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
    return dest


ENSEMBLE_FILE = "ensemble.json"


def build_ensemble(entries: list[dict], *, top: int = 3, split: str = "speaker") -> dict:
    """Average the probabilities of the ``top`` shipped models with the best *validation*
    UAR (never test) on one split protocol, and score that average on their shared test
    clips. Returns the ensemble card (members, selection rule, test metrics)."""
    import numpy as np

    from ser.evaluation import classification_metrics

    pool = [e for e in entries if e["source"] == "shipped"
            and e["card"].get("split", {}).get("protocol") == split]
    pool.sort(key=lambda e: -e["card"].get("metrics", {}).get("val_uar_best", 0))
    members = pool[:top]
    if len(members) < 2:
        raise ValueError("An ensemble needs at least two shipped models on the same split.")
    frames = []
    for e in members:
        p = Path(e["bundle"])
        frames.append(pd.read_csv(p.with_name(p.stem + ".predictions.csv")))
    clips = frames[0]["clip"].tolist()
    if any(f["clip"].tolist() != clips for f in frames):
        raise ValueError("The members were tested on different clips; cannot ensemble.")
    cols = [f"p_{lab}" for lab in config.LABELS]
    probs = np.mean([f[cols].to_numpy() for f in frames], axis=0)
    y = frames[0]["true"].map({lab: i for i, lab in enumerate(config.LABELS)}).to_numpy()
    metrics = classification_metrics(y, probs)
    c0 = members[0]["card"]
    return {"name": f"ensemble.crema-{'si' if split == 'speaker' else split}",
            "members": [e["name"] for e in members],
            "selection": f"top {top} shipped models by best validation UAR (test unseen)",
            "split": c0.get("split", {}), "data": c0.get("data", {}),
            "metrics": {"test": {k: metrics[k] for k in ("n", "accuracy", "uar", "macro_f1",
                                                         "macro_precision", "loss")}},
            "confusion_matrix": metrics["confusion_matrix"],
            "per_class": metrics["per_class"]}


def read_ensemble(folder: Path | None = None) -> dict | None:
    p = Path(folder or config.models_dir()) / ENSEMBLE_FILE
    try:
        return read_json(p) if p.exists() else None
    except ValueError:
        return None
