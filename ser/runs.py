"""Training runs on disk: create, launch in their own process, follow, cancel, list, delete.

A run lives in ``runs/<run-id>/``: ``config.json``, ``status.json``, ``metrics.jsonl``,
``train.log``, ``model.pt`` + ``model.json`` (the bundle), ``report.json`` and
``predictions.csv``. All state is on disk, so a page reload, a second browser tab or the
CLI see the same runs. Runs execute one at a time by default (one CPU is busy enough):
a launched run waits as ``queued`` until a slot is free and it is the oldest waiting run.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from ser import config
from ser.fileio import append_jsonl, read_json, read_jsonl, write_json
from ser.recipe import RunCancelledError, TrainConfig

STATES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE = ("queued", "running")
STOPPED_UNEXPECTEDLY = "the training process stopped unexpectedly (see train.log)"


class RunError(ValueError):
    """A run id that does not exist, or an operation the run's state does not allow."""


def root() -> Path:
    return config.runs_dir()


def run_dir(run_id: str) -> Path:
    d = root() / run_id
    if not run_id or "/" in run_id or run_id.startswith(".") or not (d / "config.json").exists():
        raise RunError(f"No run {run_id!r} in {root()}.")
    return d


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def create(cfg) -> str:
    """Write a new run folder for a `TrainConfig` (or dict) and return its id (queued)."""
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(dict(cfg))
    cfg.check()
    cfg.resolved_epochs()  # unknown architecture → error now, not in the background
    if cfg.length != "fixed":
        from ser.dataset import check_length

        check_length(cfg)  # e.g. a fixed-input architecture asked for variable length
    if float(cfg.vote_weight) != 1:
        from ser.dataset import check_votes

        check_votes(cfg)  # e.g. raters' votes asked of a corpus that has none
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.arch}-{secrets.token_hex(2)}"
    d = root() / run_id
    d.mkdir(parents=True, exist_ok=False)
    write_json(d / "config.json", cfg.as_dict())
    write_json(d / "status.json", {"state": "queued", "created": _now(), "created_ts":
                                   time.time(), "pid": None})
    return run_id


def status(run_id: str) -> dict:
    """The run's status, corrected to ``failed`` if its process died without saying so."""
    d = run_dir(run_id)
    try:
        st = read_json(d / "status.json")
    except (FileNotFoundError, ValueError):
        st = {"state": "failed", "error": "status.json is missing or damaged"}
    if st.get("state") in ACTIVE and st.get("pid") and not _alive(st["pid"]):
        time.sleep(0.2)  # the process may have just written its final state
        st = read_json(d / "status.json")
        if st.get("state") in ACTIVE:
            st.update(state="failed", ended=_now(), error=STOPPED_UNEXPECTEDLY)
            write_json(d / "status.json", st)
            _stop_group(run_id, st)  # its feature workers must not live on as orphans
    st["run_id"] = run_id
    return st


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process has exited
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _set_status(d: Path, **updates) -> dict:
    try:
        st = read_json(d / "status.json")
    except (FileNotFoundError, ValueError):
        st = {}
    st.update(updates)
    write_json(d / "status.json", st)
    return st


def launch(run_id: str, *, max_parallel: int = 1) -> int:
    """Start the run's training in a detached process; returns its pid.

    The process runs ``python -m ser train --run RUN_ID``; it waits (queued) for a free
    slot among ``max_parallel`` before training.
    """
    d = run_dir(run_id)
    log = open(d / "train.log", "ab")
    env = dict(os.environ)
    env["SER_RUNS_DIR"] = str(root())
    env["PYTHONUNBUFFERED"] = "1"
    env["SER_RUN_ID"] = run_id  # inherited by feature workers: marks the run's processes
    # start_new_session: the run leads its own process group, which its feature workers
    # join, so `kill` and `cleanup` can stop all of them at once.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ser", "train", "--run", run_id, "--max-parallel",
         str(max_parallel)],
        cwd=str(config.ROOT), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True)
    log.close()
    _set_status(d, pid=proc.pid, pgid=proc.pid, launched=_now())
    _reap_when_done(proc, run_id)
    return proc.pid


def death_reason(returncode: int) -> str:
    """Why a training process that never wrote its final state ended, from its exit code
    (negative: the signal that ended it), in words the Train page can show."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGKILL:
            return ("the training process was killed (SIGKILL) before it finished; on "
                    "Linux that is most often the system running out of memory. A run holds "
                    "its training clips and every augmented copy in memory (a log-mel run "
                    "about 1/3 GB per 1,000 of those rows at its peak): fewer copies or "
                    "corpora, or closing other programs, help (see train.log)")
        return f"the training process was stopped by {name} before it finished (see train.log)"
    return (f"the training process exited with code {returncode} before it finished "
            "(see train.log)")


def _reap_when_done(proc: subprocess.Popen, run_id: str | None = None) -> None:
    """Wait for the child in a daemon thread, so a finished run does not stay a
    ``<defunct>`` zombie under the server that launched it. A run that ends without writing
    its final state (killed from outside, e.g. by the out-of-memory killer) is marked
    failed with the reason its exit code gives, and its workers are stopped."""
    import threading

    def wait() -> None:
        code = proc.wait()
        if run_id is None or code == 0:
            return
        d = run_dir(run_id)
        if (d / "cancel").exists():  # stopped on request: cancel/kill write its state
            return
        try:
            st = read_json(d / "status.json")
        except (FileNotFoundError, ValueError):
            return
        if st.get("state") in ACTIVE or (st.get("state") == "failed"
                                         and st.get("error") == STOPPED_UNEXPECTEDLY):
            st = _set_status(d, state="failed", ended=st.get("ended") or _now(),
                             error=death_reason(code), exit_code=code)
            _stop_group(run_id, st)

    threading.Thread(target=wait, name=f"reap-{proc.pid}", daemon=True).start()


def start(cfg, *, max_parallel: int = 1) -> str:
    """`create` + `launch`: the Train page's one call."""
    run_id = create(cfg)
    launch(run_id, max_parallel=max_parallel)
    return run_id


def cancel(run_id: str) -> dict:
    """Ask a run to stop. A queued run is cancelled at once; a training one stops after
    its current step, saves its best weights so far and ends ``cancelled``; one still
    preparing its data (nothing to save yet) is stopped with its workers (`kill`)."""
    d = run_dir(run_id)
    (d / "cancel").write_text(_now())
    st = status(run_id)
    if st["state"] == "queued" and not (st.get("pid") and _alive(st["pid"])):
        st = _set_status(d, state="cancelled", ended=_now())
    elif st["state"] == "running" and st.get("stage") not in ("training", "testing"):
        st = kill(run_id)
    return st


def kill(run_id: str, *, grace: float = 5.0) -> dict:
    """Stop a run now, with every process of its group (feature workers included): SIGTERM,
    then SIGKILL after ``grace`` seconds. An active run ends ``cancelled``."""
    d = run_dir(run_id)
    (d / "cancel").write_text(_now())
    try:
        st = read_json(d / "status.json")
    except (FileNotFoundError, ValueError):
        st = {}
    _stop_group(run_id, st, grace=grace)
    if st.get("state") in ACTIVE:
        st = _set_status(d, state="cancelled", ended=_now(), stage="killed")
    st["run_id"] = run_id
    return st


def cleanup() -> list[str]:
    """Stop leftover processes of runs that are no longer active (e.g. feature workers
    whose run was killed with SIGKILL). Returns the ids of the runs that had some."""
    cleaned = []
    for r in list_runs():  # list_runs → status() already stops a dead run's group
        st = r["status"]
        if st.get("state") not in ACTIVE and _marked(r["run_id"], 0):
            _stop_group(r["run_id"], st)
            cleaned.append(r["run_id"])
    return cleaned


def _pgid(st: dict) -> int | None:
    value = st.get("pgid") or st.get("pid")
    return int(value) if value else None


def _group_members(run_id: str, pgid: int | None) -> list[int]:
    """Live processes of process group ``pgid`` that belong to ``run_id`` (their
    environment carries ``SER_RUN_ID``), so a recycled group id is never signalled.
    ``pgid`` 0 means any group: torchrun starts each worker of a distributed run in a
    session of its own, and they must be found too."""
    return list(_marked(run_id, pgid))


def _marked(run_id: str, pgid: int | None) -> dict[int, int]:
    """``{pid: pgid}`` of the live processes of ``run_id`` in group ``pgid`` (0 = any)."""
    if pgid is None or not os.path.isdir("/proc"):
        return {}
    mark = f"SER_RUN_ID={run_id}".encode()
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if (pgid and int(fields[2]) != pgid) or fields[0] == b"Z":
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if mark in f.read().split(b"\0"):
                    out[int(entry)] = int(fields[2])
        except (OSError, IndexError, ValueError):
            continue
    return out


def _stop_group(run_id: str, st: dict, *, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, the run's process group and the groups of every other
    process of the run (distributed workers, each in a session of its own)."""
    pgid = _pgid(st)
    if pgid is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        groups = set(_marked(run_id, 0).values())
        if not groups:
            return
        for g in groups:
            try:
                os.killpg(g, sig)
            except (ProcessLookupError, PermissionError):
                continue
        end = time.time() + wait
        while time.time() < end:
            if not _marked(run_id, 0):
                return
            time.sleep(0.1)


def cancel_requested(d: Path) -> bool:
    return (d / "cancel").exists()


def delete(run_id: str) -> None:
    """Remove a run folder; an active run must be cancelled first."""
    import shutil

    st = status(run_id)
    if st["state"] in ACTIVE:
        raise RunError(f"Run {run_id} is {st['state']}; cancel it before deleting it.")
    shutil.rmtree(run_dir(run_id))


def read_run(run_id: str) -> dict:
    """One run: its id, config, status, headline test metrics (report) and bundle path.
    Raises `RunError` for an unknown id, ValueError for a damaged config."""
    d = run_dir(run_id)
    cfg = read_json(d / "config.json")
    st = status(run_id)
    rep = None
    if (d / "report.json").exists():
        try:
            rep = read_json(d / "report.json")
        except ValueError:
            rep = None
    return {"run_id": run_id, "config": cfg, "status": st, "report": rep,
            "bundle": str(d / "model.pt") if (d / "model.pt").exists() else None}


def list_runs() -> list[dict]:
    """Every run, newest first (see `read_run`)."""
    out = []
    base = root()
    if not base.is_dir():
        return out
    for d in sorted(base.iterdir(), reverse=True):
        if not (d / "config.json").exists():
            continue
        try:
            out.append(read_run(d.name))
        except (ValueError, RunError):
            continue
    return out


def metrics(run_id: str) -> list[dict]:
    return read_jsonl(run_dir(run_id) / "metrics.jsonl")


def log_tail(run_id: str, lines: int = 20) -> str:
    p = run_dir(run_id) / "train.log"
    if not p.exists():
        return ""
    with open(p, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 20000))
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


# ------------------------------------------------------------------ inside the run process

def _wait_for_slot(d: Path, max_parallel: int, on_wait=None):
    """Block until this run may start; returns the held lock file (or None if cancelled).

    ``on_wait`` is called once with a sentence saying why, if the run has to wait at all
    (the CLI prints it: a run that sits queued behind another without a word looks hung).
    """
    lock_dir = root() / ".slots"
    lock_dir.mkdir(parents=True, exist_ok=True)
    my_created = read_json(d / "status.json").get("created_ts", 0)
    slots = max(1, max_parallel)
    announced = False
    while True:
        if cancel_requested(d):
            return None
        older_waiting = False
        for other in root().iterdir():
            if other == d or not (other / "status.json").exists():
                continue
            try:
                ost = read_json(other / "status.json")
            except ValueError:
                continue
            if (ost.get("state") == "queued" and ost.get("created_ts", 0) < my_created
                    and ost.get("pid") and _alive(ost["pid"])):
                older_waiting = True
                break
        if not older_waiting:
            for slot in range(slots):
                f = open(lock_dir / f"slot{slot}.lock", "w")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return f
                except OSError:
                    f.close()
        if on_wait is not None and not announced:
            announced = True
            why = ("an older queued run goes first" if older_waiting else
                   "the training slot is taken" if slots == 1 else
                   f"all {slots} training slots are taken")
            on_wait(f"is queued: {why} (--max-parallel {slots}: runs in {root()} train at "
                    f"most {slots} at a time). It starts as soon as it may.")
        time.sleep(0.5)


def execute(run_id: str, *, max_parallel: int = 1, on_event=None, progress=None) -> int:
    """Run a queued run in this process (what the launched subprocess does). Exit code.

    ``on_event`` / ``progress`` also receive fit's events (the CLI draws bars with them).
    """
    extra_event, extra_progress = on_event, progress
    d = run_dir(run_id)
    _set_status(d, pid=os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: (d / "cancel").write_text(_now()))
    try:
        slot = _wait_for_slot(d, max_parallel,
                              on_wait=lambda why: print(f"run {run_id} {why}", flush=True))
    except KeyboardInterrupt:  # Ctrl-C while queued: the run never started
        _set_status(d, state="cancelled", ended=_now())
        raise
    if slot is None:
        _set_status(d, state="cancelled", ended=_now())
        return 0
    try:
        # torch only once the slot is ours: a study queues many runs at once, and each
        # waiting process stays small.
        from ser.training import fit

        cfg = TrainConfig.from_dict(read_json(d / "config.json"))
        _set_status(d, state="running", started=_now(), started_ts=time.time(),
                    pid=os.getpid(), stage="preparing data")
        print(f"run {run_id}: {cfg.arch} on {cfg.data or 'default corpus'}, split {cfg.split}",
              flush=True)
        last = {"t": 0.0, "stage": None}

        def progress(stage: str, done: int, total: int) -> None:
            # A new stage is written at once (the page must never show the last one's
            # "920/920" while the next works); counts inside a stage once a second.
            now = time.time()
            if stage != last["stage"] or now - last["t"] > 1.0 or done == total:
                last.update(t=now, stage=stage)
                _set_status(d, stage=stage, stage_done=done, stage_total=total,
                            stage_ts=now)
                print(f"{stage}: {done}/{total}" if total else stage, flush=True)
            if extra_progress:
                extra_progress(stage, done, total)

        if cfg.distributed:
            return _supervise(d, run_id, cfg, progress, extra_event)
        result = fit(cfg, on_event=_event_logger(d, extra_event),
                     should_stop=lambda: cancel_requested(d), progress=progress)
        progress("saving the model", 0, 0)
        _finish(d, result, cfg)
        return 0
    except RunCancelledError as err:
        _set_status(d, state="cancelled", ended=_now(), stage="cancelled")
        print(err, flush=True)
        return 0
    except BaseException as err:  # noqa: BLE001 - every failure must end up in status.json
        traceback.print_exc()
        sys.stdout.flush()
        _set_status(d, state="failed", ended=_now(), error=f"{type(err).__name__}: {err}")
        return 1
    finally:
        slot.close()


def _event_logger(d: Path, extra_event=None):
    """fit's ``on_event`` for a run: metrics.jsonl, status.json and a log line per epoch."""
    def log_event(ev: dict) -> None:
        append_jsonl(d / "metrics.jsonl", ev)
        if extra_event:
            extra_event(ev)
        if ev["type"] == "epoch":
            _set_status(d, stage="training", epoch=ev["epoch"], epochs=ev["epochs"],
                        eta_s=ev["eta_s"])
            print(f"epoch {ev['epoch']}/{ev['epochs']}: train loss {ev['train_loss']:.4f}"
                  f" val loss {ev['val_loss']:.4f} val acc {ev['val_accuracy']:.3f} "
                  f"val UAR {ev['val_uar']:.3f} ({ev['epoch_time_s']:.1f} s)", flush=True)
    return log_event


def _finish(d: Path, result, cfg: TrainConfig) -> None:
    save_result(d, result, half=cfg.half_bundle)
    final = "cancelled" if result.stopped == "cancelled" else "finished"
    _set_status(d, state=final, ended=_now(), stage=result.stopped,
                test_accuracy=result.report["accuracy"], test_uar=result.report["uar"])
    print(f"{final}: test accuracy {result.report['accuracy']:.4f}, "
          f"UAR {result.report['uar']:.4f}", flush=True)


# ------------------------------------------------------------------ distributed runs

def _supervise(d: Path, run_id: str, cfg: TrainConfig, progress, on_event=None) -> int:
    """A distributed run's own process: extract the features once (the workers then load
    them from the cache), start the workers with torchrun in this process group, pass
    their epoch events on (the CLI's bars) and turn their end into the run's state."""
    import gc

    from ser.dataset import prepare
    from ser.distributed import first_failure, torchrun_command
    from ser.models import model_input_space
    from ser.training import stoppable

    data = prepare(cfg, model_input_space(cfg.arch),
                   progress=stoppable(progress, lambda: cancel_requested(d)))
    del data
    gc.collect()
    if cancel_requested(d):
        _set_status(d, state="cancelled", ended=_now(), stage="cancelled")
        return 0
    for old in d.glob("rank*.error.json"):
        old.unlink()
    cmd = torchrun_command(run_id, nproc=cfg.nproc, nnodes=cfg.nnodes,
                           node_rank=cfg.node_rank, master_addr=cfg.master_addr,
                           master_port=cfg.master_port)
    _set_status(d, stage="starting processes", processes=cfg.world_size)
    print(f"starting {cfg.nproc} process(es) on node {cfg.node_rank} of {cfg.nnodes}: "
          + " ".join(cmd), flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", SER_RUNS_DIR=str(root()), SER_RUN_ID=run_id)
    # Its own session, like its workers: `kill` finds all of them by their SER_RUN_ID mark.
    proc = subprocess.Popen(cmd, cwd=str(config.ROOT), env=env, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    _set_status(d, torchrun_pid=proc.pid)
    seen = 0

    def forward() -> None:
        nonlocal seen
        events = read_jsonl(d / "metrics.jsonl")
        if on_event:
            for ev in events[seen:]:
                on_event(ev)
        seen = len(events)

    try:
        while proc.poll() is None:
            time.sleep(0.5)
            forward()
    except BaseException:  # Ctrl-C in a foreground run: the workers must not live on
        _stop_torchrun(proc)
        raise
    forward()
    st = read_json(d / "status.json")
    if proc.returncode == 0 and st.get("state") in ("finished", "cancelled"):
        return 0
    if proc.returncode == 0 and cfg.node_rank > 0:  # rank 0 lives on node 0
        _set_status(d, state="finished", ended=_now(), stage="finished (worker node)")
        return 0
    failure = first_failure(d)
    if failure:
        error = f"rank {failure.get('rank')} failed: {failure.get('error')}"
    else:
        error = (f"a training process stopped (torchrun exit code {proc.returncode}); "
                 "see train.log")
    if cancel_requested(d) and not failure:
        _set_status(d, state="cancelled", ended=_now(), stage="killed")
        return 0
    _set_status(d, state="failed", ended=_now(), error=error)
    print(f"failed: {error}", flush=True)
    return 1


def _stop_torchrun(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM torchrun (it passes the signal on to its workers), SIGKILL its session's
    processes if it has not ended within ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def execute_worker(run_id: str) -> int:
    """One rank of a distributed run (what torchrun starts): join the group, train this
    rank's shards; rank 0 writes metrics, status, bundle and report. A failing rank leaves
    its traceback in ``rank<R>.error.json`` (and the log) and exits 1, which makes torchrun
    stop the other ranks."""
    from ser import distributed
    from ser.training import fit

    d = run_dir(run_id)
    rank = int(os.environ.get("RANK", "-1"))
    try:
        cfg = TrainConfig.from_dict(read_json(d / "config.json"))
        dist = distributed.init(cfg.device)
        if dist.is_main:
            print(f"{dist.world} processes ({dist.backend}); rank 0 on {dist.device}",
                  flush=True)
        result = fit(cfg, on_event=_event_logger(d) if dist.is_main else None,
                     should_stop=lambda: cancel_requested(d), dist=dist)
        if dist.is_main:
            _finish(d, result, cfg)
        # Every rank leaves the group together, once rank 0 has written the bundle: a rank
        # that tore its connections down while rank 0 was still testing and saving could
        # abort at exit ("terminate called without an active exception"), and torchrun then
        # stopped rank 0 before the model was saved (seen on a loaded machine).
        dist.barrier()
        distributed.shutdown(dist)
        return 0
    except BaseException as err:  # noqa: BLE001 - the supervisor reports it
        print(f"rank {rank} failed:", flush=True)
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        distributed.record_failure(d, rank, err)
        return 1


def save_result(d: Path, result, *, half: bool = False) -> None:
    """Write bundle, report and per-clip predictions of a finished fit into folder ``d``."""
    from ser.bundle import save_bundle
    from ser.fileio import atomic_write_text

    d.mkdir(parents=True, exist_ok=True)
    result.card.extra["run_id"] = d.name
    save_bundle(d / "model.pt", result.model, result.card, half=half)
    write_json(d / "report.json", result.report)
    atomic_write_text(d / "predictions.csv", result.predictions.to_csv(index=False))
