"""The real-voices targets, from the cross-corpus scores stored beside the shipped models.

    python benchmarks/cross_corpus.py

Reads ``models/<name>/cross_corpus.json`` (written by ``python -m ser crosscorpus ... --write``)
and ``models/ensemble.json``, and prints:

- the cross-corpus matrix (model × test corpus: UAR and the share of the most predicted
  label; ``*`` marks a corpus that was in the model's training pool, scored on its held-out
  speakers);
- the leave-one-corpus-out targets: UAR ≥ 50 % on each of TESS, SAVEE and EMOVO for the
  models trained without that corpus, and no label predicted for more than 35 % of clips;
- the general model's accuracy on CREMA-D's standard speaker-independent test (≥ 66 %).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import crosscorpus  # noqa: E402
from ser.ensemble import read_ensemble  # noqa: E402
from ser.zoo import shipped_models  # noqa: E402

CORPORA = ("crema-d", "tess", "savee", "emovo", "urdu")
TARGET_CORPORA = ("tess", "savee", "emovo")


def fmt(cell) -> str:
    if cell is None:
        return f"{'–':>15}"
    mark = "*" if cell.kind != "unseen" else " "
    if getattr(cell, "enrol", 0):
        mark += "†"
    return f"{cell.uar:>6.1%} top {cell.top_share:>3.0%}{mark}"


def main() -> int:
    rows = []
    for e in shipped_models():
        cells = {c.corpus: c for c in crosscorpus.read(e.folder)}
        if cells:
            rows.append((e.name, e, cells))
    ens = read_ensemble()
    if ens and ens.cross_corpus:
        rows.append((f"{ens.name} (average)", None,
                     {c["corpus"]: crosscorpus.Cell(**c) for c in ens.cross_corpus}))
    if not rows:
        print("no cross-corpus scores stored; run `python -m ser crosscorpus ... --write`")
        return 1
    print(f"{'model':<40}" + "".join(f"{k:>16}" for k in CORPORA))
    for name, _, cells in rows:
        print(f"{name:<40}" + "".join(f"{fmt(cells.get(k)):>16}" for k in CORPORA))
    print("UAR over the corpus's emotions; top = share of the most predicted label; "
          "* = corpus in the training pool (its held-out test speakers); † = speaker-"
          "normalised model, each speaker's statistics from enrolment clips that are not "
          "scored (see benchmarks/enrolment.py)")
    print("\nleave-one-corpus-out targets (UAR ≥ 50 %, top share ≤ 35 %):")
    for key in TARGET_CORPORA:
        loco = [(n, c[key]) for n, e, c in rows if e is not None and key in c
                and e.card.split.get("test_corpus") == key]
        for name, cell in loco:
            ok = cell.uar >= 0.5 and cell.top_share <= 0.35
            how = f", {cell.enrol} enrolment clips/speaker" if getattr(cell, "enrol", 0) else ""
            print(f"  {key:<6} {name:<40} UAR {cell.uar:.1%}  top {cell.top_share:.0%} "
                  f"({cell.top_label}{how})  {'met' if ok else 'NOT met'}")
        if not loco:
            print(f"  {key:<6} no leave-one-corpus-out model shipped")
    print("\nCREMA-D standard speaker-independent test (≥ 66 % for the general model):")
    for name, e, cells in rows:
        if e is not None and "crema-d" in cells and cells["crema-d"].kind != "unseen" \
                and len(e.card.split.get("corpora") or []) > 1:
            print(f"  {name:<40} accuracy {cells['crema-d'].accuracy:.1%}  "
                  f"UAR {cells['crema-d'].uar:.1%}  (n={cells['crema-d'].n})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
