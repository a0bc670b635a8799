"""CLI commands about data: corpus info, features, the demo corpus, splits, architectures."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def progress_bar(desc: str):
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    state: dict = {}

    def progress(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, unit="clip", file=sys.stderr,
                                      disable=None)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def load_corpus_verbose(path):
    from ser.corpora import load_corpus

    corpus = load_corpus(path, progress=progress_bar("generating demo corpus"))
    if corpus.is_demo:
        print(f"Using the {corpus.name} (synthetic voices, not real speech) at {corpus.root}.\n"
              "Point SER Studio at CREMA-D with a PATH argument or SER_DATA_DIR.",
              file=sys.stderr)
    return corpus


def cmd_corpus_info(args) -> int:
    from ser.corpora import crema_d, summary

    corpus = load_corpus_verbose(args.path)
    s = summary(corpus)
    m = corpus.manifest
    kind = "SYNTHETIC demo corpus" if corpus.is_demo else "real recordings"
    print(f"{corpus.name} — {kind}\nfolder: {corpus.root} (via {corpus.source})")
    print(f"clips: {s['clips']:,}   speakers: {s['speakers']}   sentences: {s['sentences']}   "
          f"hours: {s['duration_s']['total_h']:.2f}   duration: {s['duration_s']['min']:.2f}–"
          f"{s['duration_s']['max']:.2f} s")
    print("\nper emotion:")
    for e, n in s["per_emotion"].items():
        print(f"  {e:<8} {n:>6,}")
    print("\nper intensity: " + ", ".join(f"{k} {v:,}" for k, v in s["per_intensity"].items()))
    print("per sentence:  " + ", ".join(f"{k} {v:,}" for k, v in s["per_sentence"].items()))
    per_spk = m.groupby("speaker").size()
    common = per_spk.mode().iloc[0]
    odd = per_spk[per_spk != common]
    print(f"per speaker:   {common} clips for {int((per_spk == common).sum())} speakers"
          + ("; " + ", ".join(f"{k}: {v}" for k, v in odd.items()) if len(odd) else ""))
    if "sex" in m:
        sexes = m.drop_duplicates("speaker")["sex"].value_counts().to_dict()
        print("speakers by sex: " + ", ".join(f"{k} {v}" for k, v in sexes.items()))
    if corpus.unparsed:
        print(f"\n{len(corpus.unparsed)} audio files skipped (names do not parse), e.g. "
              + ", ".join(Path(p).name for p in corpus.unparsed[:5]))
    if corpus.unreadable:
        print(f"{len(corpus.unreadable)} files unreadable, e.g. "
              + ", ".join(Path(p).name for p in corpus.unreadable[:5]))
    if not args.no_quirks:
        q = crema_d.quirks(m, progress=progress_bar("scanning audio for quirks"))
        print("\nquirks:")
        print(f"  digital silence: {len(q['silent'])}" + (f" ({', '.join(q['silent'])})"
                                                         if q["silent"] else ""))
        print(f"  identical audio under different labels: {len(q['duplicates_conflicting'])}"
              + "".join(f"\n    {' = '.join(d)}" for d in q["duplicates_conflicting"]))
        other = [d for d in q["duplicates"] if d not in q["duplicates_conflicting"]]
        if other:
            print(f"  identical audio with the same label: {len(other)}")
        print(f"  clipped (reach full scale): {len(q['clipped'])}")
    if args.json:
        print(json.dumps(s, indent=2, default=str))
    return 0


def cmd_features(args) -> int:
    from ser.features import SPACES
    from ser.store import FeatureStore

    corpus = load_corpus_verbose(args.path)
    spaces = tuple(args.space) if args.space else SPACES
    t0 = time.perf_counter()
    store = FeatureStore(workers=args.workers, cache=not args.no_cache)
    arrays = store.features(list(corpus.manifest["path"]), spaces=spaces,
                            progress=progress_bar("extracting features"))
    dt = time.perf_counter() - t0
    for s, a in arrays.items():
        print(f"{s}: shape {tuple(a.shape)}, min {float(a.min()):.3g}, max {float(a.max()):.3g}")
    print(f"{len(corpus.manifest):,} clips in {dt:.1f} s")
    return 0


def cmd_demo_data(args) -> int:
    from ser.corpora import demo

    path = demo.generate(args.dest, overwrite=args.overwrite,
                         progress=progress_bar("generating demo corpus"))
    print(f"{demo.DEMO_NAME} ready at {path}")
    return 0


def cmd_models(args) -> int:
    import pandas as pd

    from ser.models import describe, models_table

    if args.name:
        d = describe(args.name)
        print(f"{d['display_name']} ({d['name']}) — {d['family']}, input {d['input_shape']}")
        print(pd.DataFrame(d["layers"]).to_string(index=False))
        print(f"\nparameters: {d['total_params']:,}   MACs/clip: {d['macs']:,}")
        print(f"\n{d['summary']}\n\n{d['size_note']}")
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(models_table().to_string(index=False))
    return 0


def cmd_split(args) -> int:
    from ser.splits import check_leakage, make_split

    corpus = load_corpus_verbose(args.path)
    m = corpus.manifest
    s = make_split(m, args.protocol, seed=args.seed)
    print(f"{corpus.name}: {s.description}")
    print(f"train {len(s.train):,} / validation {len(s.val):,} / test {len(s.test):,} clips; "
          f"speakers {m['speaker'].iloc[s.train].nunique()} / "
          f"{m['speaker'].iloc[s.val].nunique()} / {m['speaker'].iloc[s.test].nunique()}")
    print(check_leakage(s, m).text())
    return 0
