"""Data-parallel training over several processes (one machine or several) with PyTorch's own
engine: ``torch.distributed`` + DistributedDataParallel, launched by ``torchrun``
(``python -m torch.distributed.run``).

How a distributed run goes (see `ser.runs.execute`):

1. The run's own process (the *supervisor*, ``python -m ser train --run ID``) waits for a
   slot, extracts the features once (filling the feature cache, with progress in
   ``status.json``) and then starts ``python -m torch.distributed.run --nproc-per-node N
   ... -m ser train --run ID --dist-worker`` in its process group.
2. Every worker (*rank*) joins the process group: NCCL on ``cuda:LOCAL_RANK`` when CUDA is
   present, gloo on the CPU otherwise. It loads the features from the cache and trains a
   DDP-wrapped copy of the model on its shard of every batch.
3. Rank 0 alone writes metrics, status, checkpoint, bundle and report; the others write
   nothing but, if they fail, ``rank<R>.error.json`` with their traceback.

Sharding (the role of ``DistributedSampler`` + ``set_epoch``): every rank draws the same
seeded permutation of the training rows each epoch; global batch ``b`` is rows
``perm[b·B:(b+1)·B]`` (``B`` = the recipe's ``batch_size``, the *global* batch) and rank
``r`` takes every ``W``-th of them starting at ``r``. The loss of each rank is its sum over
its rows divided by the global batch's size (or class-weight sum) times ``W``, so the
gradient DDP averages over ranks is exactly the gradient of the global batch's mean loss,
however unevenly the last batch splits.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

#: Environment variables torchrun sets in every worker.
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class DistributedError(RuntimeError):
    """A distributed run cannot start or went wrong; the message says why."""


@dataclass
class Dist:
    """Where this process stands in the job: rank, world size, local rank and device.

    ``Dist()`` is the ordinary single-process case: every collective is a no-op.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: torch.device | None = None
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -------------------------------------------------------------- collectives

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all ranks (float64)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        torch.distributed.all_reduce(t)
        return t.cpu().tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (e.g. cancel asked)."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (a picklable Python object)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")


def worker_env() -> bool:
    """True inside a process torchrun started (RANK, WORLD_SIZE and LOCAL_RANK are set)."""
    return all(k in os.environ for k in _ENV)


def init(device_preference: str = "auto") -> Dist:
    """Join the process group torchrun set up; pick this rank's device and backend.

    CUDA present (and not refused with ``device="cpu"``): ``cuda:LOCAL_RANK`` and NCCL, one
    GPU per local process. Otherwise the CPU and gloo.
    """
    import torch.distributed as tdist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    pref = device_preference or "auto"
    if pref == "mps":
        raise DistributedError("Distributed training runs on CUDA GPUs or CPUs, not on MPS; "
                               "use --device auto or cpu.")
    use_cuda = torch.cuda.is_available() and pref in ("auto", "cuda")
    if pref == "cuda" and not torch.cuda.is_available():
        raise DistributedError("CUDA was requested but no CUDA GPU is available.")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"{local_world} processes per node were asked for but this machine has "
                f"{torch.cuda.device_count()} GPU(s); use --nproc {torch.cuda.device_count()}"
                " or fewer (one process per GPU).")
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not tdist.is_initialized():
        # device_id binds NCCL's communicator to this rank's GPU at once (no guessing,
        # no hang in the first barrier); gloo needs none.
        extra = {"device_id": device} if backend == "nccl" else {}
        tdist.init_process_group(backend=backend, rank=rank, world_size=world, **extra)
    return Dist(rank, world, local_rank, local_world, device, backend)


def shutdown(d: Dist) -> None:
    import torch.distributed as tdist

    if d.enabled and tdist.is_initialized():
        tdist.destroy_process_group()


def cpu_threads(d: Dist, requested: int = 0) -> int:
    """CPU threads per rank: the recipe's ``threads``, else this node's cores shared out
    among its ranks (so N ranks do not each start one thread per core)."""
    from ser.parallel import cpu_count

    if requested:
        return int(requested)
    return max(1, cpu_count() // max(d.local_world, 1))


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel (batch-norm layers made synchronous
    on GPUs, so their statistics cover the global batch), or unchanged in one process."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if d.backend == "nccl":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[d.device.index],
                                       output_device=d.device.index)
    return DistributedDataParallel(model)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside a DDP wrapper (what is evaluated and saved)."""
    return getattr(model, "module", model)


# ------------------------------------------------------------------ launching and failures

def torchrun_command(run_id: str, *, nproc: int, nnodes: int = 1, node_rank: int = 0,
                     master_addr: str = "", master_port: int = 0) -> list[str]:
    """The command that starts the workers of run ``run_id`` (no PATH assumption: the
    current interpreter runs ``torch.distributed.run``). One node uses a standalone
    rendezvous on a free local port; several use the static rendezvous at
    ``master_addr:master_port`` that node 0 hosts."""
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={int(nproc)}"]
    if int(nnodes) <= 1:
        cmd.append("--standalone")
    else:
        if not master_addr:
            raise DistributedError("A run on several nodes needs --master-addr (the address "
                                   "of node 0, reachable from every node).")
        cmd += [f"--nnodes={int(nnodes)}", f"--node-rank={int(node_rank)}",
                f"--master-addr={master_addr}", f"--master-port={int(master_port or 29500)}"]
    # (not `--run ID`: torchrun's own parser would take `--run` for its `--run-path`)
    return cmd + ["-m", "ser", "train", "--dist-worker", run_id]


def error_file(run_dir: Path, rank: int) -> Path:
    return Path(run_dir) / f"rank{rank}.error.json"


def record_failure(run_dir: Path, rank: int, err: BaseException) -> None:
    """Leave this rank's error and traceback where the supervisor finds them."""
    from ser.fileio import write_json

    try:
        write_json(error_file(run_dir, rank), {
            "rank": rank, "time": time.time(), "error": f"{type(err).__name__}: {err}",
            "traceback": "".join(traceback.format_exception(err))})
    except OSError:
        pass


def first_failure(run_dir: Path) -> dict | None:
    """The earliest failure report of a rank of this node (the root cause: the other ranks
    fail after it, when their collectives lose it), or None."""
    found = []
    for p in Path(run_dir).glob("rank*.error.json"):
        try:
            found.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return min(found, key=lambda r: (r.get("time", 0), r.get("rank", 0))) if found else None
