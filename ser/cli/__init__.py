"""``python -m ser``: the command line, on the same code paths as the app's pages.

Building the parser imports no torch: ``python -m ser corpus info`` starts fast, and only
commands that train or run a model import it.
"""

from __future__ import annotations

import argparse
import sys

from ser.cli import data_commands, model_commands, study_commands


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
    info.set_defaults(func=data_commands.cmd_corpus_info)

    feats = sub.add_parser("features", help="extract (and cache) FS1/FS2 for a corpus")
    feats.add_argument("path", nargs="?")
    feats.add_argument("--space", choices=["fs1", "fs2"], action="append")
    feats.add_argument("--workers", type=int, default=None)
    feats.add_argument("--no-cache", action="store_true")
    feats.set_defaults(func=data_commands.cmd_features)

    demo = sub.add_parser("demo-data", help="generate the synthetic demo corpus")
    demo.add_argument("--dest", default=None)
    demo.add_argument("--overwrite", action="store_true")
    demo.set_defaults(func=data_commands.cmd_demo_data)

    split = sub.add_parser("split", help="make a split and run the leakage check on it")
    split.add_argument("path", nargs="?")
    split.add_argument("--protocol", choices=["speaker", "random", "kfold"], default="speaker")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(func=data_commands.cmd_split)

    models = sub.add_parser("models", help="list the architectures (or describe one)")
    models.add_argument("name", nargs="?")
    models.set_defaults(func=data_commands.cmd_models)

    model_commands.add_commands(sub)  # training, evaluation, prediction, runs
    study_commands.add_commands(sub)  # grids of runs over seeds, verdicts on claims
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
