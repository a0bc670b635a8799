"""Measure every registered model on this machine's CPU and print a table.

Per model at default keyword arguments: parameters, MACs per clip, training throughput
(samples/s for forward + backward + Adam step at batch 64 on random data, best of a few
timed windows) and inference latency (median ms for one clip). Ends by saying whether
every model meets the training budget (60 samples/s; 250 for ser2d).

    python benchmarks/models.py                 # all models, 2 torch threads
    python benchmarks/models.py --models "*2d" --threads 4
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import config
from ser.models import create_model, describe, list_models

#: Training throughput every model must reach at default size (samples/s, batch 64).
MIN_TRAIN_RATE = 60.0
#: ser2d is meant to be the cheap, accurate default, so it has a stricter budget.
MIN_TRAIN_RATE_BY_MODEL = {"ser2d": 250.0}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _run(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def training_rate(name: str, batch: int, warmup: int, windows: int, window_seconds: float,
                  min_steps: int) -> float:
    """Training samples per second: forward, cross-entropy, backward, Adam step.

    The best of ``windows`` timed windows, so that another process briefly taking a core
    does not understate what the model needs.
    """
    torch.manual_seed(0)
    model = create_model(name).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    inputs = model.example_input(batch=batch)
    targets = torch.randint(0, config.N_CLASSES, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(_run(model, inputs), targets).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    best = 0.0
    for _ in range(windows):
        steps, start = 0, time.perf_counter()
        while steps < min_steps or time.perf_counter() - start < window_seconds:
            step()
            steps += 1
        best = max(best, steps * batch / (time.perf_counter() - start))
    return best


@torch.no_grad()
def inference_ms(name: str, repeats: int) -> float:
    """Median milliseconds to classify one default-sized clip."""
    model = create_model(name).eval()
    inputs = model.example_input(batch=1)
    for _ in range(3):
        _run(model, inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _run(model, inputs)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="*", help="wildcard over registered names")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps")
    parser.add_argument("--windows", type=int, default=3, help="timed windows (best is kept)")
    parser.add_argument("--seconds", type=float, default=1.5, help="minimum seconds per window")
    parser.add_argument("--steps", type=int, default=3, help="minimum steps per window")
    parser.add_argument("--repeats", type=int, default=30, help="inference repeats")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    names = list_models(args.models)
    print(f"torch {torch.__version__}, {args.threads} threads, {_cpu_name()}, batch {args.batch}, "
          f"input FS1 {config.FS1_SHAPE} / FS2 {config.FS2_SHAPE}; train/s = best of "
          f"{args.windows} windows, infer = median of {args.repeats}")
    header = (f"{'model':<10} {'params':>10} {'MMACs':>8} {'train/s':>8} {'infer ms':>9} "
              f"{'budget':>7}  ok")
    print(header)
    print("-" * len(header))
    failures = []
    for name in names:
        info = describe(name)
        rate = training_rate(name, args.batch, args.warmup, args.windows, args.seconds,
                             args.steps)
        latency = inference_ms(name, args.repeats)
        budget = MIN_TRAIN_RATE_BY_MODEL.get(name, MIN_TRAIN_RATE)
        ok = rate >= budget
        if not ok:
            failures.append(name)
        print(f"{name:<10} {info['total_params']:>10,} {info['macs'] / 1e6:>8.1f} "
              f"{rate:>8.1f} {latency:>9.2f} {budget:>7.0f}  {'yes' if ok else 'NO'}",
              flush=True)
    if failures:
        print(f"\nBelow the training budget: {', '.join(failures)}")
        return 1
    print(f"\nEvery model meets its training budget (≥ {MIN_TRAIN_RATE:.0f} samples/s; "
          + ", ".join(f"{k} ≥ {v:.0f}" for k, v in MIN_TRAIN_RATE_BY_MODEL.items()) + ").")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
