"""Measure every registered model on this machine's CPU and print a table.

Per model at default keyword arguments: parameters, MACs per clip, training throughput
(samples/s for forward + backward + Adam step at batch 64 on random data, best of a few
timed windows) and inference latency (median ms for one clip). Ends by saying whether
every model meets the training budget (60 samples/s; 250 for ser2d).

    python benchmarks/models.py                 # all models, 2 torch threads
    python benchmarks/models.py --models "*2d" --threads 4
    python benchmarks/models.py --bf16          # also bfloat16 training (--precision bf16)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import config
from ser.models import create_model, describe, list_models
from ser.training import autocast

#: Training throughput every model must reach at default size (samples/s, batch 64).
MIN_TRAIN_RATE = 60.0
#: ser2d is meant to be the cheap, accurate default, so it has a stricter budget.
MIN_TRAIN_RATE_BY_MODEL = {"ser2d": 250.0}
#: Other processes' CPU share above which wall-clock timings are not trusted.
QUIET_SHARE = 0.10


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class OtherLoad:
    """Share of this machine's CPU time that other processes used while the block ran.

    Timings on a shared machine are only meaningful when this is near 0; it is None where
    ``/proc/stat`` is missing (not Linux).
    """

    share: float | None = None

    @staticmethod
    def _machine_busy_seconds() -> float | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> OtherLoad:
        self._start = (time.perf_counter(), self._machine_busy_seconds(), self._own_seconds())
        return self

    def __exit__(self, *exc: object) -> None:
        wall0, busy0, own0 = self._start
        busy1 = self._machine_busy_seconds()
        if busy0 is None or busy1 is None:
            return
        wall = time.perf_counter() - wall0
        others = (busy1 - busy0) - (self._own_seconds() - own0)
        self.share = max(0.0, others / (wall * (os.cpu_count() or 1)))


def _run(model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def training_rate(name: str, batch: int, warmup: int, windows: int, window_seconds: float,
                  min_steps: int, clock: Callable[[], float] = time.perf_counter,
                  dtype: torch.dtype | None = None) -> float:
    """Training samples per second: forward, cross-entropy, backward, Adam step.

    The best of ``windows`` timed windows, so that another process briefly taking a core
    does not understate what the model needs. ``clock`` is wall time by default; with
    ``time.thread_time`` and one torch thread it counts only this thread's CPU time.
    ``dtype`` (e.g. ``torch.bfloat16``): the forward pass under CPU autocast to it, as
    training with ``--precision bf16`` does.
    """
    torch.manual_seed(0)
    model = create_model(name).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    inputs = model.example_input(batch=batch)
    targets = torch.randint(0, config.N_CLASSES, (batch,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(torch.device("cpu"), dtype):
            loss = loss_fn(_run(model, inputs).float(), targets)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    best = 0.0
    for _ in range(windows):
        steps, start = 0, clock()
        while steps < min_steps or clock() - start < window_seconds:
            step()
            steps += 1
        best = max(best, steps * batch / (clock() - start))
    return best


def cpu_bound_rate(name: str, args: argparse.Namespace) -> float:
    """Training samples per second of one thread's CPU time.

    Other processes cannot lower it, and on an idle machine more threads only go faster,
    so it is a lower bound for the wall-clock rate on an idle machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return training_rate(name, args.batch, args.warmup, args.windows, args.seconds,
                             args.steps, clock=time.thread_time)
    finally:
        torch.set_num_threads(threads)


def inference_ms(name: str, repeats: int) -> float:
    """Median wall-clock milliseconds to classify one default-sized clip, on one thread.

    One clip is too little work to share between threads, and a single thread keeps the
    figure meaningful when other processes hold a core.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _inference_ms(name, repeats)
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def _inference_ms(name: str, repeats: int) -> float:
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


def encoder_ms(repeats: int) -> float:
    """Median one-thread milliseconds of `ser.voice.voice_vector` on a 3-s clip."""
    import numpy as np

    from ser.voice import voice_vector

    y = np.random.default_rng(0).normal(0, 0.1, 3 * config.SAMPLE_RATE).astype(np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        voice_vector(y, config.SAMPLE_RATE)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            voice_vector(y, config.SAMPLE_RATE)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(threads)
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
    parser.add_argument("--bf16", action="store_true", help="also measure training under "
                        "bfloat16 autocast (--precision bf16): its samples/s and the ratio")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    names = list_models(args.models)
    from ser.training import cpu_has_bf16

    print(f"torch {torch.__version__}, {_cpu_name()}, {os.cpu_count()} CPUs, batch {args.batch}, "
          f"FS1 {config.FS1_SHAPE}, FS2 {config.FS2_SHAPE}"
          + (f"; bfloat16 instructions: {'yes' if cpu_has_bf16() else 'no'}"
             if args.bf16 else ""))
    header = (f"{'model':<10} {'params':>10} {'MMACs':>7} {'train/s':>8} {'1-thr CPU/s':>11} "
              f"{'infer ms':>8} {'others':>6} {'budget':>6}  ok"
              + (f" {'bf16/s':>8} {'ratio':>6}" if args.bf16 else ""))
    print(header)
    print("-" * len(header))
    failures, busiest = [], 0.0
    for name in names:
        info = describe(name)
        with OtherLoad() as load:
            rate = training_rate(name, args.batch, args.warmup, args.windows, args.seconds,
                                 args.steps)
            latency = inference_ms(name, args.repeats)
        floor = cpu_bound_rate(name, args)
        quiet = load.share is not None and load.share <= QUIET_SHARE
        # On a busy machine the wall-clock rate measures the neighbours, not the model;
        # the one-thread CPU-time rate is then the honest (conservative) figure.
        judged = max(rate, floor) if quiet else floor
        budget = MIN_TRAIN_RATE_BY_MODEL.get(name, MIN_TRAIN_RATE)
        ok = judged >= budget
        if not ok:
            failures.append(name)
        others = "?" if load.share is None else f"{load.share:.0%}"
        busiest = max(busiest, load.share or 0.0)
        extra = ""
        if args.bf16:
            half = training_rate(name, args.batch, args.warmup, args.windows, args.seconds,
                                 args.steps, dtype=torch.bfloat16)
            extra = f" {half:>8.1f} {half / rate:>5.2f}×"
        print(f"{name:<10} {info['total_params']:>10,} {info['macs'] / 1e6:>7.1f} {rate:>8.1f} "
              f"{floor:>11.1f} {latency:>8.2f} {others:>6} {budget:>6.0f}  "
              f"{'yes' if ok else 'NO '}{extra}", flush=True)
    print(f"""
train/s      wall-clock samples/s with {args.threads} torch threads (best of {args.windows} windows)
1-thr CPU/s  samples/s per second of one thread's CPU time: a lower bound for train/s on an
             idle machine, unaffected by other processes
infer ms     median wall-clock latency for one clip, one thread ({args.repeats} repeats)
others       share of the machine's CPU used by other processes while train/s and infer ms
             were measured; above {QUIET_SHARE:.0%} train/s understates the model and the
             verdict uses 1-thr CPU/s alone""")
    if args.bf16:
        print("bf16/s       train/s with the forward pass under bfloat16 autocast "
              "(training --precision bf16)")
        print("ratio        bf16/s ÷ train/s (above 1: faster)")
    if any(describe(n)["input_space"] == "voice" for n in names):
        print(f"\nvoice models: infer ms is the read-out alone; the frozen voice encoder that "
              f"makes their input adds {encoder_ms(args.repeats):.1f} ms per 3-s clip (one "
              "thread, resampling and mel included), as the STFT does for the CNNs.")
    if busiest > QUIET_SHARE:
        print(f"\nThe machine was busy (others up to {busiest:.0%}): rerun on an idle machine "
              "for a representative train/s.")
    if failures:
        print(f"\nBelow the training budget: {', '.join(failures)}")
        return 1
    print(f"\nEvery model meets its training budget (≥ {MIN_TRAIN_RATE:.0f} samples/s; "
          + ", ".join(f"{k} ≥ {v:.0f}" for k, v in MIN_TRAIN_RATE_BY_MODEL.items()) + ").")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
