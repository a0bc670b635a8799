"""Metrics: accuracy, UAR, macro-F1/precision, loss, confusion matrix, per-clip rows.

Pure functions of labels and probabilities; nothing here reads files or models.

UAR (unweighted average recall) is the mean of per-class recalls, i.e. balanced accuracy;
it is the headline metric for CREMA-D because neutral has fewer clips than the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser.config import LABELS


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Metrics of class-probability rows ``probs`` (N, C) against integer labels ``y_true``."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=int)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = probs.shape[1]
    y_pred = probs.argmax(axis=1)
    labels = list(range(n_classes))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                       zero_division=0)
    present = support > 0
    eps = 1e-12
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0))))
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "uar": float(np.mean(r[present])) if present.any() else float("nan"),
        "macro_f1": float(np.mean(f[present])) if present.any() else float("nan"),
        "macro_precision": float(np.mean(p[present])) if present.any() else float("nan"),
        "loss": loss,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "per_class": {LABELS[c] if n_classes == len(LABELS) else str(c): {
            "precision": float(p[c]), "recall": float(r[c]), "f1": float(f[c]),
            "support": int(support[c])} for c in labels},
    }


#: The one definition of "human accuracy" used on every page, in the CLI and in reports.
HUMAN_VOICE_RULE = ("the majority vote of CREMA-D's crowd raters who heard the audio only "
                    "(no video; `VoiceVote` in summaryTable.csv) matched the intended "
                    "emotion; a tie of k labels that includes it counts 1/k")


def human_vote_accuracy(true_labels, votes) -> float | None:
    """Share of clips where the raters' voice-only majority matched the intended emotion;
    a tie between k labels that includes the right one earns 1/k (`HUMAN_VOICE_RULE`).
    Clips without a vote are left out."""
    credit, n = 0.0, 0
    for t, v in zip(true_labels, votes):
        if not isinstance(v, str) or not v:
            continue
        options = v.split(":")
        credit += (1.0 / len(options)) if t in options else 0.0
        n += 1
    return credit / n if n else None


def human_voice_baseline(clips: pd.DataFrame, scope: str) -> dict | None:
    """Human accuracy (`HUMAN_VOICE_RULE`) on the six-emotion clips of ``clips`` that carry
    a vote, with the words that name it: ``{"accuracy", "n", "scope", "text"}``. ``scope``
    says which clips (e.g. "all CREMA-D clips", "this model's test clips"). None when no
    clip has a vote (corpora other than CREMA-D)."""
    if "human_vote" not in clips:
        return None
    six = clips[clips["emotion"].isin(LABELS)] if "emotion" in clips else clips
    votes = six["human_vote"].where(six["human_vote"].astype(str) != "")
    truth = six["emotion"] if "emotion" in six else six["true"]
    acc = human_vote_accuracy(truth, votes)
    if acc is None:
        return None
    n = int(votes.notna().sum())
    return {"accuracy": acc, "n": n, "scope": scope,
            "text": f"{acc:.1%} of {n:,} clips ({scope}): {HUMAN_VOICE_RULE}"}


def predictions_frame(manifest: pd.DataFrame, y_true: np.ndarray, probs: np.ndarray
                      ) -> pd.DataFrame:
    """One row per clip: path, clip, speaker, true, predicted, confidence, p_<label>…"""
    cols = {c: manifest[c].to_numpy() for c in ("path", "clip", "corpus", "speaker", "sentence",
                                                 "intensity", "sex", "human_vote")
            if c in manifest}
    df = pd.DataFrame(cols)
    df["true"] = [LABELS[i] for i in y_true]
    df["predicted"] = [LABELS[i] for i in probs.argmax(axis=1)]
    df["correct"] = df["true"] == df["predicted"]
    df["confidence"] = probs.max(axis=1)
    for i, lab in enumerate(LABELS):
        df[f"p_{lab}"] = probs[:, i]
    return df


def full_report(manifest: pd.DataFrame, y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Overall metrics plus the same metrics sliced by intensity, sentence and sex."""
    report = classification_metrics(y_true, probs)
    slices = {}
    for col in ("corpus", "intensity", "sentence", "sex"):
        if col not in manifest:
            continue
        values = manifest[col].to_numpy()
        slices[col] = {}
        for v in sorted({x for x in values if isinstance(x, str)}):
            mask = values == v
            m = classification_metrics(y_true[mask], probs[mask])
            slices[col][v] = {k: m[k] for k in ("n", "accuracy", "uar", "macro_f1")}
    report["slices"] = slices
    if "human_vote" in manifest:
        acc = human_vote_accuracy([LABELS[i] for i in y_true], manifest["human_vote"])
        if acc is not None:
            report["human_voice_accuracy"] = acc
    return report
