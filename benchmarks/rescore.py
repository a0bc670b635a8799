"""Shared by the benchmarks that score one model again under variants of prediction
(`floor_at_test.py`, `clip_batchnorm.py`): a comma-separated list of settings, and a table
with one row per corpus and one UAR (most-predicted share) per variant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import crosscorpus  # noqa: E402
from ser.bundle import Bundle, load_bundle  # noqa: E402
from ser.dataset import Inputs, encode_labels, featurise  # noqa: E402
from ser.ensemble import bundle_paths  # noqa: E402


def settings(ap: argparse.ArgumentParser, text: str, flag: str,
             valid: Callable[[float], bool], rule: str) -> list[float]:
    """The numbers of ``text`` ("0.1,0.25"); ``ap.error`` (exit 2) naming ``flag`` when one
    is not a number or not ``valid`` (``rule`` says what is)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        ap.error(f"{flag} takes numbers separated by commas, not {text!r}")
    if not all(valid(v) for v in values):
        ap.error(f"{flag} {rule}")
    return values


def arguments(doc: str, model_help: str, flag: str, default: str, flag_help: str,
              valid: Callable[[float], bool], rule: str, argv=None
              ) -> tuple[argparse.ArgumentParser, str, list[float], dict[str, str], Bundle]:
    """The command line every rescoring benchmark takes: a model, one or more
    ``--corpus KEY=FOLDER`` and a comma-separated list of variant settings under ``flag``.
    Returns the parser (for the script's own refusals), the model's name, the settings, the
    corpora and the loaded bundle; a bad argument ends with exit code 2."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("model", help=model_help)
    ap.add_argument("--corpus", action="append", required=True, metavar="KEY=FOLDER")
    ap.add_argument(flag, default=default, help=flag_help)
    a = ap.parse_args(argv)
    values = settings(ap, getattr(a, flag.lstrip("-").replace("-", "_")), flag, valid, rule)
    try:
        corpora = crosscorpus.parse_corpora(a.corpus)
    except ValueError as err:
        ap.error(str(err))
    for key, folder in corpora.items():
        if not Path(folder).is_dir():
            ap.error(f"--corpus {key}: no folder {folder}")
    return ap, a.model, values, corpora, load_bundle(bundle_paths(a.model)[0])


def scored_corpora(bundle, corpora: dict[str, str]):
    """``(key, kind, clips, labels)`` for every corpus with clips to score
    (`crosscorpus.scored_clips`: a corpus the model heard on its held-out speakers only, any
    other whole); a corpus without any is named as skipped."""
    for key, folder in corpora.items():
        clips, kind = crosscorpus.scored_clips(bundle, key, folder)
        if not len(clips):
            print(f"{key}: skipped — none of its speakers is a test speaker of the "
                  "model's split")
            continue
        yield key, kind, clips, encode_labels(clips["emotion"])


def table(bundle, corpora: dict[str, str], headers: list[str],
          variants: Callable[[Inputs], list[np.ndarray]]) -> None:
    """Print, for every corpus, the UAR (most-predicted share) of each of the probabilities
    ``variants`` gives for its scored clips' model inputs (`scored_corpora`)."""
    print(f"{'corpus':<10}{'kind':<10}{'n':>6}" + "".join(f"{h:>16}" for h in headers))
    for key, kind, clips, y in scored_corpora(bundle, corpora):
        cells = [crosscorpus.cell(key, kind, y, p.argmax(1))
                 for p in variants(featurise(bundle.card, clips))]
        print(f"{key:<10}{kind:<10}{len(y):>6}" + "".join(
            f"{f'{c.uar:.1%} ({c.top_share:.0%})':>16}" for c in cells), flush=True)
