"""``python -m ser``: the command line, on the same code paths as the app's pages."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _progress_bar(desc: str):
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


def _load_corpus(path):
    from ser.corpora import load_corpus

    corpus = load_corpus(path, progress=_progress_bar("generating demo corpus"))
    if corpus.is_demo:
        print(f"Using the {corpus.name} (synthetic voices, not real speech) at {corpus.root}.\n"
              "Point SER Studio at CREMA-D with a PATH argument or SER_DATA_DIR.",
              file=sys.stderr)
    return corpus


def cmd_corpus_info(args) -> int:
    from ser.corpora import crema_d, summary

    corpus = _load_corpus(args.path)
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
        q = crema_d.quirks(m, progress=_progress_bar("scanning audio for quirks"))
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
    from ser import features

    corpus = _load_corpus(args.path)
    spaces = tuple(args.space) if args.space else features.SPACES
    t0 = time.perf_counter()
    arrays = features.extract_manifest(corpus.manifest, spaces=spaces, workers=args.workers,
                                       cache=not args.no_cache,
                                       progress=_progress_bar("extracting features"))
    dt = time.perf_counter() - t0
    for s, a in arrays.items():
        print(f"{s}: shape {tuple(a.shape)}, min {float(a.min()):.3g}, max {float(a.max()):.3g}")
    print(f"{len(corpus.manifest):,} clips in {dt:.1f} s")
    return 0


def cmd_demo_data(args) -> int:
    from ser.corpora import demo

    path = demo.generate(args.dest, overwrite=args.overwrite,
                         progress=_progress_bar("generating demo corpus"))
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

    corpus = _load_corpus(args.path)
    m = corpus.manifest
    s = make_split(m, args.protocol, seed=args.seed)
    print(f"{corpus.name}: {s.description}")
    print(f"train {len(s.train):,} / validation {len(s.val):,} / test {len(s.test):,} clips; "
          f"speakers {m['speaker'].iloc[s.train].nunique()} / "
          f"{m['speaker'].iloc[s.val].nunique()} / {m['speaker'].iloc[s.test].nunique()}")
    print(check_leakage(s, m).text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ser", description="SER Studio command line.")
    sub = p.add_subparsers(dest="command", required=True)

    corpus = sub.add_parser("corpus", help="inspect a corpus")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    info = csub.add_parser("info", help="counts, speakers, quirks of a corpus")
    info.add_argument("path", nargs="?", help="corpus folder (default: SER_DATA_DIR, data/, "
                                              "or the synthetic demo corpus)")
    info.add_argument("--no-quirks", action="store_true", help="skip the audio scan")
    info.add_argument("--json", action="store_true", help="also print the summary as JSON")
    info.set_defaults(func=cmd_corpus_info)

    feats = sub.add_parser("features", help="extract (and cache) FS1/FS2 for a corpus")
    feats.add_argument("path", nargs="?")
    feats.add_argument("--space", choices=["fs1", "fs2"], action="append")
    feats.add_argument("--workers", type=int, default=None)
    feats.add_argument("--no-cache", action="store_true")
    feats.set_defaults(func=cmd_features)

    demo = sub.add_parser("demo-data", help="generate the synthetic demo corpus")
    demo.add_argument("--dest", default=None)
    demo.add_argument("--overwrite", action="store_true")
    demo.set_defaults(func=cmd_demo_data)

    split = sub.add_parser("split", help="make a split and run the leakage check on it")
    split.add_argument("path", nargs="?")
    split.add_argument("--protocol", choices=["speaker", "random", "kfold"], default="speaker")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(func=cmd_split)

    models = sub.add_parser("models", help="list the architectures (or describe one)")
    models.add_argument("name", nargs="?")
    models.set_defaults(func=cmd_models)

    from ser import cli_train  # training, evaluation, prediction, runs

    cli_train.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ser.audio import AudioError
    from ser.corpora import CorpusError

    try:
        return int(args.func(args) or 0)
    except (AudioError, CorpusError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
