"""Re-evaluate every shipped model on the clips its card names, and compare with its report.

    python benchmarks/reevaluate.py [DATA]   (DATA: e.g. ../shared/datasets/crema-d)

Prints one row per shipped model: clips scored, accuracy and UAR now, the accuracy its
report recorded for the shipped (float16) weights, and whether the data fingerprint matches
the card's. A difference means the data path, the features or the weights have changed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser.bundle import load_bundle  # noqa: E402
from ser.evaluation import evaluate_bundle  # noqa: E402
from ser.zoo import shipped_models  # noqa: E402


def main(data: str | None) -> int:
    t0 = time.perf_counter()
    print(f"{'model':<42} {'n':>5} {'acc now':>8} {'UAR now':>8} {'acc shipped':>11}  data")
    changed = 0
    for e in shipped_models():
        rep, _ = evaluate_bundle(load_bundle(e.bundle), data)
        was = e.report.get("float16_check", {}).get("accuracy_float16", e.report.get("accuracy"))
        same = was is not None and abs(rep["accuracy"] - was) < 1e-9
        changed += not same
        print(f"{e.name:<42} {rep['n']:>5} {rep['accuracy']:>8.4f} {rep['uar']:>8.4f} "
              f"{was:>11.4f}  {'same clips' if rep['data']['fingerprint_matches'] else 'OTHER'}"
              f"{'' if same else '  ← differs'}", flush=True)
    print(f"{changed} of {len(shipped_models())} differ from their reports "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else None))
