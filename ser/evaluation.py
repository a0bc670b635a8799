"""Score a trained model on a part of the split its card records.

`evaluate_bundle` is what ``python -m ser evaluate``, shipping (the float16 check and the
validation predictions the ensemble is chosen on) and the tests use: the clips come from
`ser.dataset.recorded_part`, so a k-fold model is scored on its own fold and a
``max_clips`` model on its own sample, never on clips it trained on.
"""

from __future__ import annotations

import pandas as pd

from ser import config
from ser.bundle import Bundle
from ser.corpora import load_corpus
from ser.dataset import encode_labels, featurise, predict_proba, recorded_part
from ser.metrics import full_report, predictions_frame
from ser.speakers import split_enrolment
from ser.splits import usable


def evaluate_bundle(bundle: Bundle, data: str | None = None, *, split: str | None = None,
                    part: str = "test", progress=None) -> tuple[dict, pd.DataFrame]:
    """Report and per-clip predictions of ``bundle`` on ``part`` ("test" or "val") of its
    own split. ``data`` points at the corpus when it is not where the card says; ``split``
    overrides the protocol (the report then says which protocol it used)."""
    if part not in ("test", "val"):
        raise ValueError(f"part must be 'test' or 'val', not {part!r}")
    p = recorded_part(bundle.card, part, data=data, protocol=split, progress=progress)
    probs = predict_proba(bundle.model, p.inputs)
    report = full_report(p.clips, p.labels, probs)
    sel = p.selection
    report["protocol"] = sel.split.card(sel.manifest)
    report["data"] = {"corpus": sel.corpus.name, "synthetic": sel.corpus.is_demo,
                      "clips": len(p.clips), "part": part,
                      "fingerprint_matches": sel.fingerprint == bundle.card.data.get(
                          "fingerprint", sel.fingerprint)}
    return report, predictions_frame(p.clips, p.labels, probs)


def evaluate_on_corpus(bundle: Bundle, data: str, *, progress=None, enrol: int | None = None
                       ) -> tuple[dict, pd.DataFrame]:
    """Score ``bundle`` on every six-emotion clip of another corpus (cross-corpus testing:
    the model never heard any of its speakers). The report adds ``predicted_share``, the
    share of clips given each label, so a collapse onto one class shows at a glance.

    A speaker-normalised model draws ``enrol`` clips per speaker (default: its card's
    ``enrol``) to give that speaker's statistics; those clips are not scored.

    Raises `ValueError` when the model trained on clips of that corpus (`Card.trained_corpora`):
    then it is not a cross-corpus test.
    """
    corpus = load_corpus(data)
    clips = corpus.manifest[usable(corpus.manifest)].reset_index(drop=True)
    trained_on = bundle.card.trained_corpora
    if corpus.key in trained_on:
        raise ValueError(f"{bundle.name} was trained on {corpus.name}: that is not a "
                         "cross-corpus test. Evaluate it on its own test split instead.")
    enrolment, note = None, ""
    if bundle.card.speaker_normalised:
        k = int(enrol or bundle.card.training.enrol)
        picked, scored = split_enrolment(clips, k, bundle.card.training.split_seed)
        enrolment = clips.iloc[picked].reset_index(drop=True)
        clips = clips.iloc[scored].reset_index(drop=True)
        note = (f"; speaker-normalised: {k} enrolment clips per speaker give its statistics "
                "and are not scored")
    probs = predict_proba(bundle.model, featurise(bundle.card, clips, enrol=enrolment,
                                                  progress=progress))
    y = encode_labels(clips["emotion"])
    report = full_report(clips, y, probs)
    pred = probs.argmax(1)
    report["predicted_share"] = {lab: float((pred == i).mean())
                                 for i, lab in enumerate(config.LABELS)}
    trained = ", ".join(sorted(trained_on))
    report["protocol"] = {"protocol": "cross-corpus", "protocol_name": "cross-corpus",
                          "description": f"every six-emotion clip of {corpus.name}; the model "
                          f"trained on {trained} only{note}"}
    report["data"] = {"corpus": corpus.name, "synthetic": corpus.is_demo, "clips": len(clips),
                      "part": "all" if enrolment is None else "all but the enrolment clips"}
    if enrolment is not None:
        report["data"]["enrolment_clips"] = len(enrolment)
    return report, predictions_frame(clips, y, probs)
