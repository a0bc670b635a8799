"""Speaker-normalised models against the number of enrolment clips per speaker.

    python benchmarks/enrolment.py MODEL [MODEL ...] --corpus tess=/data/tess \
        [--corpus savee=/data/savee ...] [--ks 1,3,5,10,20] [--draws 3] [--json out.json]

For every test corpus and every speaker in it, ``max(ks)`` candidate enrolment clips are
drawn (seeded per speaker); the speaker's remaining clips are the scored set, the same for
every ``k``, so enrolment clips are never scored and the figures for different ``k`` are
comparable. With ``k`` enrolment clips the speaker's statistics come from the first ``k``
candidates. ``--draws`` repeats the whole draw with other seeds and prints mean ± std.

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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import crosscorpus  # noqa: E402
from ser.bundle import load_bundle  # noqa: E402
from ser.corpora import load_corpus  # noqa: E402
from ser.dataset import card_config, encode_labels, model_inputs, predict_proba, select  # noqa: E402
from ser.ensemble import bundle_paths  # noqa: E402
from ser.speakers import normalise_by_group, split_enrolment, stats_by_group  # noqa: E402
from ser.splits import usable  # noqa: E402
from ser.store import FeatureStore  # noqa: E402


def clips_for(bundle, key: str, folder: str):
    """The clips to score: the held-out test speakers of the model's own split (all their
    clips, the card's enrolment clips included) for a corpus it trained on, every
    six-emotion clip otherwise."""
    if key in bundle.card.trained_corpora:
        sel = select(card_config(bundle.card))
        rows = np.concatenate([sel.split.test, sel.enrol.get("test", np.zeros(0, int))])
        clips = sel.manifest.iloc[np.sort(rows)].reset_index(drop=True)
        if "corpus" in clips and (clips["corpus"] == key).any():
            clips = clips[clips["corpus"] == key].reset_index(drop=True)
        return clips, "held-out"
    corpus = load_corpus(folder)
    return corpus.manifest[usable(corpus.manifest)].reset_index(drop=True), "unseen"


def score(bundle, clips, ks, draws) -> dict:
    card = bundle.card
    feats = FeatureStore(cfg=card.features).features(list(clips["path"]), spaces=("fs2",))
    fs2 = np.asarray(feats["fs2"])
    spk = clips["speaker"].astype(str).to_numpy()
    y_all = encode_labels(clips["emotion"])
    out = {k: [] for k in ks}
    for d in range(draws):
        cand, rows = split_enrolment(clips, max(ks), seed=card.training.split_seed + d)
        scored = np.zeros(len(clips), bool)
        scored[rows] = True
        by_spk = {s: cand[spk[cand] == s] for s in np.unique(spk[cand])}
        for k in ks:
            ref = np.concatenate([rows[:k] for rows in by_spk.values()])
            stats = stats_by_group(fs2[ref], spk[ref])
            x = normalise_by_group(fs2[scored], spk[scored], stats)
            probs = predict_proba(bundle.model, model_inputs({"fs2": x}, card.input_space,
                                                             card.normalisation_arrays()))
            cell = crosscorpus.cell(str(k), "enrolment", y_all[scored], probs.argmax(1))
            out[k].append({"uar": cell.uar, "acc": cell.accuracy, "top": cell.top_share,
                           "top_label": cell.top_label, "n": cell.n,
                           "predicted_share": {lab: round(v, 3) for lab, v in
                                               cell.predicted_share.items()}})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--corpus", action="append", required=True, metavar="KEY=FOLDER")
    ap.add_argument("--ks", default="1,3,5,10,20")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args(argv)
    ks = [int(k) for k in a.ks.split(",")]
    corpora = dict(c.split("=", 1) for c in a.corpus)
    results = {}
    for name in a.models:
        bundle = load_bundle(bundle_paths(name)[0])
        if not bundle.card.speaker_normalised:
            print(f"{name}: not speaker-normalised, skipped")
            continue
        print(f"\n{name} (trained on {', '.join(sorted(bundle.card.trained_corpora))})")
        print(f"{'corpus':<10}{'kind':<10}{'n':>6}" + "".join(f"{'k=' + str(k):>22}"
                                                          for k in ks))
        for key, folder in corpora.items():
            clips, kind = clips_for(bundle, key, folder)
            res = score(bundle, clips, ks, a.draws)
            results.setdefault(name, {})[key] = {"kind": kind, **{str(k): v for k, v in
                                                                  res.items()}}
            cells = []
            for k in ks:
                u = np.array([r["uar"] for r in res[k]])
                top = np.mean([r["top"] for r in res[k]])
                cells.append(f"{u.mean():6.1%}±{u.std():4.1%} top {top:3.0%}")
            print(f"{key:<10}{kind:<10}{res[ks[0]][0]['n']:>6}" +
                  "".join(f"{c:>22}" for c in cells))
    print("\nUAR mean ± std over draws of the enrolment clips; top = share of the most "
          "predicted label; enrolment clips are never scored.")
    k10 = str(10 if 10 in ks else ks[-1])
    print(f"\npredicted-label shares with {k10} enrolment clips (first draw):")
    for name, per in results.items():
        for key, r in per.items():
            share = r[k10][0]["predicted_share"]
            print(f"  {name:<28} {key:<8} " + "  ".join(f"{lab} {v:.0%}" for lab, v in
                                                      share.items()))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
