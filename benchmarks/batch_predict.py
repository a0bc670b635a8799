"""Batch prediction throughput: ``python -m ser predict MODELS CLIPS --csv`` timed end to end.

    python benchmarks/batch_predict.py --folder DIR [--models default] [--workers N]
    python benchmarks/batch_predict.py --test-part /path/to/crema-d [--models default]

``--folder`` scores every audio file under DIR; ``--test-part DATA`` scores the test clips of
the first model's own split on corpus DATA (for CREMA-D and the shipped models: the 1,558
speaker-independent test clips). The run goes through the real CLI (process pool on every
core, one decode per clip, a CSV written to a temporary folder); the time includes starting
the pool and loading the models in every worker. Target: the 1,558 CREMA-D test clips
with the default models in ≤ 30 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.cli import main as cli  # noqa: E402
from ser.cli.model_commands import expand_clips  # noqa: E402
from ser.ensemble import bundle_paths  # noqa: E402
from ser.parallel import cpu_count  # noqa: E402


def _cpu_seconds() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def test_part(data: str, bundle: Path) -> list[str]:
    from ser.bundle import read_card
    from ser.dataset import card_config, select

    sel = select(card_config(read_card(bundle), data=data))
    return [str(p) for p in sel.part("test")["path"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--folder", help="score every audio file under this folder")
    where.add_argument("--test-part", metavar="DATA", help="score the test clips of the first "
                       "model's split on corpus DATA")
    ap.add_argument("--models", default="default", help="as `predict` takes them (default: "
                    "the Predict page's default models)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--engine", choices=["torch", "onnx"], default="torch",
                    help="as `predict --engine` (onnx: onnxruntime runs the networks)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N clips")
    args = ap.parse_args()
    bundles = bundle_paths(args.models)
    if not bundles:
        print(f"no models for {args.models!r}", file=sys.stderr)
        return 2
    clips = (expand_clips([args.folder]) if args.folder
             else test_part(args.test_part, bundles[0]))
    if args.limit:
        clips = clips[:args.limit]
    load = os.getloadavg()[0]
    names = ", ".join(b.parent.name for b in bundles[:3])
    print(f"{len(clips)} clips, {len(bundles)} model(s) ({names}"
          f"{', …' if len(bundles) > 3 else ''}) on {args.engine}, "
          f"{args.workers or cpu_count()} worker(s) on "
          f"{cpu_count()} cores; load average before: {load:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        argv = ["predict", args.models, *clips, "--csv", str(out)]
        if args.workers:
            argv += ["--workers", str(args.workers)]
        argv += ["--engine", args.engine]
        cpu0 = _cpu_seconds()
        t = time.perf_counter()
        code = cli(argv)
        seconds = time.perf_counter() - t
        cpu = _cpu_seconds() - cpu0
        import pandas as pd

        table = pd.read_csv(out, keep_default_na=False)
    scored = int((table["error"] == "").sum())
    print(f"{scored}/{len(clips)} clips scored in {seconds:.1f} s "
          f"({len(clips) / seconds:.1f} clips/s; exit code {code}); "
          f"load average after: {os.getloadavg()[0]:.2f}")
    # On a shared machine the wall time says more about the neighbours than about us; the
    # CPU time of this process and its workers, spread over the cores, is what an idle
    # machine would need (plus the pool's start-up, included in both).
    cores = min(args.workers or cpu_count(), cpu_count())
    print(f"CPU time {cpu:.1f} s (this process and its workers) → ≈ {cpu / cores:.1f} s of "
          f"wall time on {cores} idle core(s); target ≤ 30 s for 1,558 clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
