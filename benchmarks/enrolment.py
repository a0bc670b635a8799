"""UAR against the number of enrolment clips per speaker: speaker-normalised models, and
any other model (or a group of models, averaged) adapted to each voice by its offset.

    python benchmarks/enrolment.py MODEL [MODEL ...] --corpus tess=/data/tess \
        [--corpus savee=/data/savee ...] [--ks 1,3,5,10,20] [--draws 3] \
        [--balanced | --guided] [--adapt offset|batchnorm|both] [--bn-weight 0.5] \
        [--labelled STRENGTH] [--part test|val] [--json out.json]

MODEL is a shipped name, a folder or a ``.pt`` file; ``a+b+c`` averages several models
(``ensemble`` = the shipped ensemble's members), each adapted to the voice on its own.

For every test corpus and every speaker in it, ``max(ks)`` candidate enrolment clips are
drawn (seeded per speaker); the speaker's remaining clips are the scored set, the same for
every ``k``, so enrolment clips are never scored and the figures for different ``k`` are
comparable. With ``k`` enrolment clips the speaker's statistics come from the first ``k``
candidates. ``--balanced`` draws ``k`` clips *of each emotion* instead (a guided
enrolment: one take per emotion is ``k = 1``). ``--guided`` draws the ``k`` takes the
Predict page's guide asks for (`ser.speakers.guided_emotions`: one per emotion in turn, so
``k = 10`` is two each of angry, disgust, fear and happy and one neutral and one sad); the
candidates are ``ceil(max(ks) / 6)`` clips of each emotion. ``--draws`` repeats the whole
draw with other seeds and prints mean ± std.

- A speaker-normalised model standardises each clip's log-mel image by the statistics of
  the speaker's enrolment clips (`ser.speakers.normalise_by_group`).
- Any other model is adapted by a per-class offset (`ser.speakers.voice_offset`, the
  default ``--adapt offset``): its answers on the speaker's enrolment clips moved onto its
  answers on its own validation clips (`ser.inference.stored_voice_reference`).
  ``--adapt batchnorm`` instead moves the model's BatchNorm statistics towards those of
  the speaker's enrolment clips (``--bn-weight`` their share;
  `ser.training.adapt_batchnorm`); ``--adapt both`` does that and then the offset, from
  the adapted network's answers — what the Predict page does once a visitor calibrated to
  their voice (`ser.inference.VOICE_BN_WEIGHT` = 0.5; a model without BatchNorm gets the
  offset alone). ``k=0`` is the same model without adaptation, on the same scored clips.
- ``--labelled STRENGTH`` uses the enrolment clips' emotions as well, as a visitor who says
  which emotion each take meant: after the steps above (normalisation, or BatchNorm
  statistics) the final layer of each member the Predict page refits
  (`ser.inference.refits_readout`: the voice read-outs) is refitted to the speaker's
  labelled enrolment clips (`ser.training.adapt_classifier`, ``STRENGTH`` its pull towards
  the trained weights) instead of the offset; the other members keep the offset, unless
  ``--refit-all`` refits every member (how the CNNs' refit was measured and rejected).

``--part val`` scores the validation speakers of the corpora a model trained on (to choose
a setting); the default, ``test``, its held-out test speakers.

A corpus the model trained on is scored on the test speakers of the model's own split only
(its held-out speakers); any other corpus on every speaker ("unseen"). Prints UAR,
accuracy and the share of the most predicted label (a balanced corpus has about 1/6; the
target is ≤ 30 %), and the targets of the speaker-normalisation issue:

- leave-one-corpus-out UAR with 10 enrolment clips ≥ 60 % on TESS, SAVEE and EMOVO;
- CREMA-D speaker-independent test (10 enrolment clips per test actor) ≥ 70 %.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import crosscorpus  # noqa: E402
from ser.bundle import load_bundle  # noqa: E402
from ser.dataset import (  # noqa: E402
    Inputs,
    encode_labels,
    featurise,
    input_lengths,
    model_inputs,
    predict_proba,
)
from ser.ensemble import bundle_paths  # noqa: E402
from ser.inference import (  # noqa: E402
    VOICE_BN_WEIGHT,
    refits_readout,
    stored_voice_reference,
)
from ser.speakers import (  # noqa: E402
    GUIDE_ORDER,
    draw_enrolment,
    guided_emotions,
    norm_space,
    normalise_by_group,
    shift_log_probs,
    split_enrolment,
    stats_by_group,
    voice_offset,
)
from ser.store import FeatureStore  # noqa: E402
from ser.training import adapt_batchnorm, adapt_classifier  # noqa: E402

#: ``--adapt`` choices for models without speaker normalisation.
ADAPT = ("offset", "batchnorm", "both")
#: ``--refit-all``: refit every member to labelled takes, not only those the page refits.
REFIT_ALL = False


def refits(card) -> bool:
    """True when a member's final layer is refitted to labelled takes in this run."""
    return REFIT_ALL or refits_readout(card)


def candidates(clips, k: int, seed: int, draw: str) -> tuple[dict, np.ndarray]:
    """``({speaker: candidate rows}, scored rows)``: ``k`` candidates per speaker (``draw``
    "random"), ``k`` per speaker and emotion ("balanced") or enough per speaker and emotion
    for ``k`` guided takes ("guided"); every other clip of those speakers is scored."""
    spk = clips["speaker"].astype(str).to_numpy()
    if k == 0:  # no enrolment (``--ks 0``): every clip is scored
        return {}, np.arange(len(clips))
    if draw != "random":
        per = k if draw == "balanced" else -(-k // len(GUIDE_ORDER))
        emo = clips["emotion"].astype(str).to_numpy()
        picked = np.concatenate([np.flatnonzero(emo == e)[draw_enrolment(
            clips[emo == e].reset_index(drop=True), per, seed)] for e in np.unique(emo)])
    else:
        picked, _ = split_enrolment(clips, k, seed=seed)
    picked = np.sort(picked)
    scored = np.ones(len(clips), bool)
    scored[picked] = False
    scored &= np.isin(spk, spk[picked])
    return {s: picked[spk[picked] == s] for s in np.unique(spk[picked])}, np.flatnonzero(scored)


def first(rows: np.ndarray, emo: np.ndarray, k: int, draw: str) -> np.ndarray:
    """The first ``k`` candidates (of each emotion when "balanced"; the first ``k`` takes of
    the guide when "guided")."""
    if draw == "random":
        return rows[:k]
    asked = guided_emotions(k) if draw == "guided" else None
    return np.concatenate([rows[emo[rows] == e][:k if asked is None else asked.count(e)]
                           for e in np.unique(emo[rows])])


def norm_of(card) -> str:
    """The space a speaker-normalised card's statistics are taken in ("fs2" or "voice")."""
    return norm_space((card.input_space,))


def member_probs(bundle, clips, ref_rows, raw=None, *, offset=False, offset_ref=None,
                 labelled=None):
    """A member's probabilities for every clip, given each speaker's enrolment rows
    (``raw``: a speaker-normalised member's un-normalised features in its `norm_of` space).
    ``offset``: also shift each speaker's answers by the voice offset from its answers on
    that speaker's enrolment rows, towards ``offset_ref`` (None: uniform). ``labelled``:
    the refit strength of `ser.training.adapt_classifier` on each speaker's enrolment rows
    with their emotions (None: not refitted)."""
    card = bundle.card
    if not card.speaker_normalised:
        return predict_proba(bundle.model, featurise(card, clips))
    space = norm_of(card)
    spk = clips["speaker"].astype(str).to_numpy()
    ref = np.concatenate(list(ref_rows.values()))
    stats = stats_by_group(raw[ref], spk[ref], space)
    x = normalise_by_group(raw, spk, stats)
    inputs = model_inputs({space: x}, card.input_space, card.normalisation_arrays())
    p = predict_proba(bundle.model, inputs)
    if labelled and refits(card):
        y = encode_labels(clips["emotion"])
        for s, r in ref_rows.items():
            mine = np.flatnonzero(spk == s)
            model = adapt_classifier(bundle.model, subset(inputs, r), y[r], labelled)
            p[mine] = predict_proba(model, subset(inputs, mine))
        return p
    if not offset:
        return p
    lp = np.log(np.clip(p.astype(np.float64), 1e-12, None))
    for s, r in ref_rows.items():
        mine = np.flatnonzero(spk == s)
        lp[mine] = shift_log_probs(lp[mine], voice_offset(p[r], offset_ref))
    return np.exp(lp)


def adapted_probs(bundle, inputs, plain, rows: dict, spk, ref, adapt: str,
                  bn_weight: float, labelled: float | None = None, y=None) -> np.ndarray:
    """A not speaker-normalised member's probabilities for every clip, adapted to each
    speaker from that speaker's enrolment ``rows``: by the voice offset, by BatchNorm
    statistics moved towards the enrolment clips' (`ser.training.adapt_batchnorm`), or
    both (the offset then taken from the BatchNorm-adapted model's answers). With
    ``labelled`` (a strength) the final layer is refitted to the enrolment rows and their
    emotions ``y`` instead of the offset."""
    p = plain.astype(np.float64)
    lp = np.log(np.clip(p, 1e-12, None))
    for s, r in rows.items():
        mine = np.flatnonzero(spk == s)
        enrol_p = p[r]
        model = bundle.model
        if adapt in ("batchnorm", "both"):
            model = adapt_batchnorm(bundle.model, subset(inputs, r), bn_weight)
            lp[mine] = np.log(np.clip(predict_proba(model, subset(inputs, mine)), 1e-12, None))
            enrol_p = predict_proba(model, subset(inputs, r))
        if labelled and refits(bundle.card):
            model = adapt_classifier(model, subset(inputs, r), y[r], labelled)
            lp[mine] = np.log(np.clip(predict_proba(model, subset(inputs, mine)), 1e-12, None))
        elif adapt in ("offset", "both"):
            lp[mine] = shift_log_probs(lp[mine], voice_offset(enrol_p, ref))
    return np.exp(lp)


def member_kind(card, how: str, spk_kind: str, labelled: float | None) -> str:
    """How a member is adapted, in words: ``how`` (not speaker-normalised) or ``spk_kind``,
    or the refit to labelled takes for the members the Predict page refits."""
    if labelled and refits(card):
        refit = f"final layer refitted to the labelled takes (strength {labelled:g})"
        return f"{spk_kind}, {refit}" if card.speaker_normalised else refit
    return spk_kind if card.speaker_normalised else how


def subset(inputs, rows) -> Inputs:
    """Model inputs of the clips ``rows``."""
    idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
    lengths = input_lengths(inputs)
    return Inputs([x[idx] for x in inputs], None if lengths is None else lengths[idx.numpy()])


def score(bundles, clips, ks, draws, draw="random", adapt="offset", bn_weight=0.5,
          offset_normalised=False, labelled=None) -> dict:
    spk = clips["speaker"].astype(str).to_numpy()
    emo = clips["emotion"].astype(str).to_numpy()
    y_all = encode_labels(clips["emotion"])
    inputs = {i: featurise(b.card, clips)
              for i, b in enumerate(bundles) if not b.card.speaker_normalised}
    plain = {i: predict_proba(bundles[i].model, x) for i, x in inputs.items()}
    raw = {i: np.asarray(FeatureStore(cfg=b.card.features).features(
        list(clips["path"]), spaces=(norm_of(b.card),))[norm_of(b.card)])
        for i, b in enumerate(bundles) if b.card.speaker_normalised}
    refs = {i: stored_voice_reference(b.path) for i, b in enumerate(bundles)}
    # k = 0: the members that answer without a voice (a speaker-normalised one cannot)
    show = ([0] if plain else []) + [k for k in ks if k]
    out = {k: [] for k in show}
    seed0 = bundles[0].card.training.split_seed
    for d in range(draws):
        cand, scored = candidates(clips, max(ks), seed0 + d, draw)
        for k in show:
            rows = {s: first(r, emo, k, draw) for s, r in cand.items()}
            probs = []
            for i, b in enumerate(bundles):
                if i in raw:
                    if k:
                        probs.append(member_probs(b, clips, rows, raw[i],
                                                  offset=offset_normalised,
                                                  offset_ref=refs[i], labelled=labelled))
                    continue
                probs.append(adapted_probs(b, inputs[i], plain[i], rows, spk, refs[i], adapt,
                                           bn_weight, labelled, y_all)
                             if k else plain[i].astype(np.float64))
            pred = np.mean(probs, axis=0)[scored].argmax(1)
            cell = crosscorpus.cell(str(k), "enrolment", y_all[scored], pred)
            out[k].append({"uar": cell.uar, "acc": cell.accuracy, "top": cell.top_share,
                           "top_label": cell.top_label, "n": cell.n,
                           "predicted_share": {lab: round(v, 3) for lab, v in
                                               cell.predicted_share.items()},
                           "balanced_top": max(cell.balanced_share.values()),
                           "balanced_share": {lab: round(v, 3) for lab, v in
                                              cell.balanced_share.items()}})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--corpus", action="append", required=True, metavar="KEY=FOLDER")
    ap.add_argument("--ks", default="1,3,5,10,20")
    ap.add_argument("--draws", type=int, default=3)
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--balanced", action="store_true",
                     help="k enrolment clips of each emotion per speaker")
    how.add_argument("--guided", action="store_true",
                     help="the k takes the Predict page's guide asks for (one per emotion in "
                          "turn)")
    ap.add_argument("--adapt", choices=ADAPT, default="offset",
                    help="how a model without speaker normalisation is adapted to a voice: "
                         "the per-class offset, BatchNorm statistics moved towards the "
                         "enrolment clips', or both (what the Predict page does)")
    ap.add_argument("--bn-weight", type=float, default=VOICE_BN_WEIGHT,
                    help="with --adapt batchnorm/both: the enrolment clips' share of the "
                         "BatchNorm statistics (0 = as trained, 1 = theirs alone)")
    ap.add_argument("--offset-normalised", action="store_true",
                    help="also shift a speaker-normalised model's answers by the voice "
                         "offset from its answers on the enrolment clips")
    ap.add_argument("--labelled", type=float, metavar="STRENGTH",
                    help="use the enrolment clips' emotions too: refit the final layer of "
                         "each voice member (as the Predict page does) to them, held to its "
                         "trained weights with this strength")
    ap.add_argument("--refit-all", action="store_true",
                    help="with --labelled: refit every member's final layer, the CNNs too "
                         "(the Predict page refits the voice models only)")
    ap.add_argument("--part", choices=("test", "val"), default="test",
                    help="the speakers scored on a corpus the model trained on: its held-out "
                         "test speakers, or its validation speakers (to choose a setting)")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    ks = [int(k) for k in a.ks.split(",")]
    draw = "balanced" if a.balanced else "guided" if a.guided else "random"
    if a.labelled is not None and a.labelled <= 0:
        ap.error(f"--labelled must be positive, not {a.labelled}")
    if a.refit_all and not a.labelled:
        ap.error("--refit-all needs --labelled STRENGTH")
    global REFIT_ALL
    REFIT_ALL = a.refit_all
    if not 0.0 <= a.bn_weight <= 1.0:
        ap.error(f"--bn-weight must lie in 0–1, not {a.bn_weight}")
    try:
        corpora = crosscorpus.parse_corpora(a.corpus)
    except ValueError as err:
        ap.error(str(err))
    results = {}
    for name in a.models:
        paths = [p for part in name.split("+") for p in bundle_paths(part)]
        bundles = [load_bundle(p) for p in paths]
        trained = sorted(set().union(*(b.card.trained_corpora for b in bundles)))
        how = {"offset": "adapted by the offset", "batchnorm":
               f"adapted by BatchNorm statistics (weight {a.bn_weight:g})",
               "both": f"adapted by BatchNorm statistics (weight {a.bn_weight:g}) and the "
                       "offset"}[a.adapt]
        spk_kind = "speaker-normalised" + (" + the offset" if a.offset_normalised else "")
        kinds = sorted({member_kind(b.card, how, spk_kind, a.labelled) for b in bundles})
        print(f"\n{name} ({len(bundles)} model{'s' * (len(bundles) > 1)}, "
              f"{' + '.join(kinds)}; trained on {', '.join(trained)})")
        header = False
        for key, folder in corpora.items():
            clips, kind = crosscorpus.scored_clips(bundles[0], key, folder, a.part)
            if not len(clips):
                print(f"{key}: skipped — none of its speakers is a test speaker of the "
                      "model's split")
                continue
            res = score(bundles, clips, ks, a.draws, draw, a.adapt, a.bn_weight,
                        a.offset_normalised, a.labelled)
            if not header:
                header = True
                unit = {"balanced": "/emotion", "guided": " guided"}.get(draw, "")
                print(f"{'corpus':<10}{'kind':<10}{'n':>6}" + "".join(
                    f"{'k=' + str(k) + (unit if k else ''):>24}" for k in res))
            results.setdefault(name, {})[key] = {"kind": kind, **{str(k): v for k, v in
                                                                  res.items()}}
            cells = []
            for k in res:
                u = np.array([r["uar"] for r in res[k]])
                top = np.mean([r["top"] for r in res[k]])
                cells.append(f"{u.mean():6.1%}±{u.std():4.1%} top {top:3.0%}")
            print(f"{key:<10}{kind:<10}{res[next(iter(res))][0]['n']:>6}" +
                  "".join(f"{c:>24}" for c in cells))
    print("\nUAR mean ± std over draws of the enrolment clips; top = share of the most "
          "predicted label; enrolment clips are never scored; k=0: the same models, not "
          "adapted, on the same clips (a speaker-normalised one needs a voice: left out "
          "there).")
    k10 = str(10 if 10 in ks else ks[-1])
    print(f"\npredicted-label shares with {k10} enrolment clips (first draw):")
    for name, per in results.items():
        for key, r in per.items():
            share = r[k10][0]["predicted_share"]
            print(f"  {name:<28} {key:<8} " + "  ".join(f"{lab} {v:.0%}" for lab, v in
                                                      share.items()))
            even = r[k10][0]["balanced_share"]
            if any(abs(even[lab] - v) >= 0.005 for lab, v in share.items()):
                print(f"  {'  as on a balanced corpus':<37} " + "  ".join(
                    f"{lab} {v:.0%}" for lab, v in even.items()))
    kind = (" of each emotion" if a.balanced else " (guided, each one emotion in turn)"
            if a.guided else "")
    print(f"\ntargets with {k10} enrolment clips{kind}: "
          "UAR ≥ 60 % on a never-heard TESS, SAVEE or EMOVO; ≥ 70 % on CREMA-D's held-out "
          "test actors; no class above 30 % of the answers on a balanced corpus (top: the "
          "largest share, mean over the draws, each true emotion weighted equally)")
    for name, per in results.items():
        for key, r in per.items():
            goal = (0.70 if key == "crema-d" and r["kind"] == "held-out" else
                    0.60 if key in ("tess", "savee", "emovo") and r["kind"] == "unseen"
                    else None)
            if goal is None:
                continue
            u = float(np.mean([x["uar"] for x in r[k10]]))
            top = float(np.mean([x["balanced_top"] for x in r[k10]]))
            print(f"  {name:<44} {key:<8} {u:6.1%}  target {goal:.0%}: "
                  f"{'met' if u >= goal else 'not met'}; top {top:.0%}: "
                  f"{'met' if top <= 0.30 else 'not met'}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
