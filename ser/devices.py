"""Where torch runs: pick the device, describe it, set CPU threads.

``cuda`` when available, else ``mps``, else ``cpu``; an explicit choice is checked. Nothing
else in SER Studio assumes a device.
"""

from __future__ import annotations

import contextlib

import torch

from ser.parallel import cpu_count


def pick_device(preference: str | None = "auto") -> torch.device:
    """``cuda`` when available, else ``mps``, else ``cpu``; an explicit choice is checked."""
    if preference in ("auto", "", None):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(preference)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA GPU is available.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                  and torch.backends.mps.is_available()):
        raise ValueError("MPS was requested but is not available on this machine.")
    return dev


def device_description(dev: torch.device | None = None) -> str:
    """``"CUDA: <GPU name> (24.0 GB)"``, ``"MPS (Apple GPU)"`` or ``"CPU (2 cores)"``."""
    dev = dev or pick_device()
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        return f"CUDA: {p.name} ({p.total_memory / 2**30:.1f} GB)"
    if dev.type == "mps":
        return "MPS (Apple GPU)"
    return f"CPU ({cpu_count()} cores)"


def use_threads(dev: torch.device, threads: int = 0) -> None:
    """On the CPU, let torch use ``threads`` threads (0 = every core)."""
    if dev.type == "cpu":
        torch.set_num_threads(threads or cpu_count())


#: Threads for scoring a clip on the CPU. A clip is a batch of a few windows: one thread
#: is as fast as two on an idle machine and, on a busy one (training beside the app), two
#: threads waiting for each other made one forward pass of ser2d ~100× slower (measured
#: 3 ms vs 400 ms, 2 cores, a training run next to it).
INFERENCE_THREADS = 1


@contextlib.contextmanager
def inference_threads(dev: torch.device, threads: int = INFERENCE_THREADS):
    """Run the block with ``threads`` torch threads on the CPU, then restore the count."""
    if dev.type != "cpu" or torch.get_num_threads() == threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
