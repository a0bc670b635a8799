"""Studies: grids of training runs, repeated over seeds, that test a claim.

A `Study` names a base recipe (TrainConfig options), one or more grids (fixed options ×
axes of values), the seeds every cell is trained with and the claims it tests. `expand`
gives one `TrainConfig` per cell × seed; `launch` queues the missing ones through the runs
queue (`ser.runs`), tagging each run's config with the study and cell; `progress` counts
them; `report` aggregates the finished runs over seeds and gives each claim a verdict.

Resuming is matching: a run already in the runs folder counts for a cell × seed when its
config equals the expanded one on every training option (names, devices, threads, logging,
process counts and the study tag aside; corpus folders compared after ``realpath``), so
runs started by hand with the same flags are adopted. Failed and cancelled runs do not
count and are launched again.

No Streamlit here: the CLI (``python -m ser study``) and the Studies page share it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path

from ser import config
from ser.fileio import read_json, safe_name, write_json
from ser.recipe import TrainConfig

#: Options that do not change what a run learns (or only how it is executed).
IGNORED = ("name", "device", "threads", "log_every", "nproc", "nnodes", "node_rank",
           "master_addr", "master_port", "study")
#: Two-sided Welch t-test level for "more than noise".
ALPHA = 0.05
NOISE_RULE = ("a difference counts only when a two-sided Welch t-test over the seeds gives "
              f"p < {ALPHA:g}; otherwise it is within noise (seed-to-seed spread)")
#: Finished seeds a cell needs before it counts at all (one run is never a finding).
MIN_SEEDS = 2
METRICS = {"test_accuracy": "test accuracy", "test_uar": "test UAR",
           "val_accuracy": "validation accuracy", "val_uar": "validation UAR"}
VERDICTS = ("confirmed", "not confirmed", "within noise", "incomplete")


@dataclass(frozen=True)
class Grid:
    """Options fixed for this part of a study, and the axes varied (their product)."""

    fixed: dict
    axes: dict

    def cells(self) -> list[dict]:
        names = list(self.axes)
        return [{**self.fixed, **dict(zip(names, values))}
                for values in product(*(self.axes[n] for n in names))]


@dataclass(frozen=True)
class Claim:
    """A claim of the seed write-up, tested on the cells that match ``among``: the best of
    the cells whose ``axis`` is in ``best`` must beat the best of the others."""

    id: str
    text: str
    among: dict
    axis: str
    best: tuple
    metric: str = "test_accuracy"


@dataclass(frozen=True)
class Reported:
    """A figure the seed write-up reports for the cell matching ``cell``."""

    cell: dict
    value: float
    note: str = ""


@dataclass(frozen=True)
class Study:
    """A named grid of runs over seeds and the claims it tests.

    ``base`` holds the options every run shares (anything not named anywhere is the
    `TrainConfig` default, as ``python -m ser train`` would set it); each `Grid` adds its
    fixed options and the axes it varies (e.g. gn2d at lr 0.001 × three activations), so
    one study can give each architecture its own learning rate and epochs. ``reported``
    holds the seed write-up's figures; ``schedule`` says how the epochs were shortened.
    """

    name: str
    title: str
    description: str
    grids: tuple[Grid, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    claims: tuple[Claim, ...] = ()
    base: dict = field(default_factory=lambda: {"split": "speaker"})
    reported: tuple[Reported, ...] = ()
    schedule: str = ""
    full_name: str = ""  # the full-length twin ("" for a full-length study itself)

    def cells(self) -> list[dict]:
        out = []
        for g in self.grids:
            out += [c for c in g.cells() if c not in out]
        return out

    def varied(self) -> list[str]:
        """Every option that differs between cells."""
        cells = self.cells()
        keys = [k for g in self.grids for k in {**g.fixed, **g.axes}]
        varied = [k for k in dict.fromkeys(keys) if len({repr(c.get(k)) for c in cells}) > 1]
        return sorted(varied, key=lambda k: _ORDER.get(k, len(_ORDER)))

    def axes(self) -> list[str]:
        """The options that name a cell (labels, charts): the grids' axes and the first
        option that tells the grids apart (e.g. the architecture); options that merely
        follow it (its learning rate, its epochs) are left to the description, unless the
        labels would then clash."""
        varied = self.varied()
        grid_axes = {k for g in self.grids for k in g.axes}
        first = next((k for k in varied if k not in grid_axes), None)
        short = [k for k in varied if k in grid_axes or k == first]
        cells = self.cells()
        unique = len({cell_label(c, short) for c in cells}) == len(cells)
        return short if short and unique else varied

    def label(self, cell: dict) -> str:
        return cell_label(cell, self.axes())

    def expand(self, data: str | None = None) -> list[TrainConfig]:
        """One `TrainConfig` per cell × seed (see the module function `expand`)."""
        return [p.config for p in expand(self, data)]

    def command(self, data: str = "DIR") -> str:
        return f"python -m ser study run {self.name} --data {data}"

    def full_command(self, data: str = "DIR") -> str:
        name = self.full_name or self.name
        return f"python -m ser study run {name} --data {data} --max-parallel 4"


_ORDER = {k: i for i, k in enumerate(("arch", "activation", "lr", "length", "epochs"))}


def cell_label(cell: dict, keys: list[str] | None = None) -> str:
    """e.g. ``gn2d · silu · lr 0.001``."""
    parts = []
    for k in keys or list(cell):
        v = cell.get(k)
        if v is None and k != "epochs":
            continue  # left to the architecture's default (None epochs: the seed's count)
        if k == "lr":
            parts.append(f"lr {v:g}")
        elif k == "epochs":
            parts.append(f"{v} ep" if v else "seed epochs")
        elif k == "length":
            parts.append(f"{v} length")
        else:
            parts.append(str(v))
    return " · ".join(parts)


# ------------------------------------------------------------------------ built-in studies

_REGISTRY: dict[str, Study] = {}

SEED_NOTE = ("the PyTorch seed's write-up (its split protocol is not stated, so its figures "
             "are not directly comparable with a speaker-independent test)")


#: Seeds a registered study trains every cell with, at least.
MIN_STUDY_SEEDS = 3


def register(study: Study) -> Study:
    """Make ``study`` known by name (CLI, pages). It needs at least `MIN_STUDY_SEEDS`
    seeds: with fewer, the spread between seeds is too poorly known to judge a claim."""
    safe_name(study.name, "study name")
    if len(set(study.seeds)) < MIN_STUDY_SEEDS:
        raise ValueError(f"Study {study.name!r} has {len(set(study.seeds))} seed(s); a study "
                         f"needs at least {MIN_STUDY_SEEDS}.")
    _REGISTRY[study.name] = study
    return study


def list_studies() -> list[str]:
    return list(_REGISTRY)


def get_study(name: str) -> Study:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"No study {name!r}; known: {', '.join(_REGISTRY)}.") from None


def _short_and_full(study: Study) -> None:
    """Register ``study`` (the shortened CPU schedule) and its full-length twin
    ``<name>-full`` (epochs left at the seed defaults: 30 for 1D, 20 for 2D)."""
    full = replace(
        study, name=f"{study.name}-full", full_name="",
        title=study.title + " (full length)",
        schedule="full seed schedule: 1D models 30 epochs, 2D and combined models 20 "
                 "(a GPU is advisable)",
        grids=tuple(Grid({**g.fixed, "epochs": None}, g.axes) for g in study.grids))
    register(replace(study, full_name=full.name))
    register(full)


_ACTS = ["relu", "silu", "elu"]
_short_and_full(Study(
    name="activation",
    title="Which activation is best? (ReLU, SiLU, ELU)",
    description="The seed found SiLU best for its 2D CNN (64.1 % at lr 0.001) and ELU best "
                "for its 1D CNN (55.6 % at lr 0.01). Here: the GroupNorm 1D CNN (FS1) and "
                "the GroupNorm 2D CNN (log-mel) with each activation, at the seed's learning "
                "rates, three seeds each.",
    grids=(Grid({"arch": "gn1d", "lr": 0.01, "epochs": 10}, {"activation": _ACTS}),
           Grid({"arch": "gn2d", "lr": 0.001, "epochs": 3}, {"activation": _ACTS})),
    claims=(Claim("silu-2d", "SiLU is the best activation for the 2D CNN",
                  {"arch": "gn2d"}, "activation", ("silu",)),
            Claim("elu-1d", "ELU is the best activation for the 1D CNN",
                  {"arch": "gn1d"}, "activation", ("elu",))),
    reported=(Reported({"arch": "gn2d", "activation": "silu", "lr": 0.001}, 0.641),
              Reported({"arch": "gn1d", "activation": "elu", "lr": 0.01}, 0.556)),
    schedule="shortened CPU schedule: gn1d 10 epochs, gn2d 3 epochs (the seed: 30 and 20)",
))
_LRS = [0.01, 0.001, 0.0001]
_short_and_full(Study(
    name="learning-rate",
    title="Which learning rate? (0.01, 0.001, 0.0001)",
    description="The seed found lower learning rates best for its 2D and combined "
                "models, while its best 1D CNN trained at 0.01. Here: the 1D CNN with ELU "
                "and the 2D CNN with SiLU (each seed-best activation), and the combined "
                "model, at three learning rates, three seeds each.",
    grids=(Grid({"arch": "gn1d", "activation": "elu", "epochs": 10}, {"lr": _LRS}),
           Grid({"arch": "gn2d", "activation": "silu", "epochs": 3}, {"lr": _LRS}),
           Grid({"arch": "combined", "epochs": 2}, {"lr": _LRS})),
    claims=(Claim("low-lr-2d", "Lower learning rates (0.001, 0.0001) are best for the 2D "
                  "CNN", {"arch": "gn2d"}, "lr", (0.001, 0.0001)),
            Claim("low-lr-combined", "Lower learning rates (0.001, 0.0001) are best for "
                  "the combined model", {"arch": "combined"}, "lr", (0.001, 0.0001)),
            Claim("lr-1d", "The 1D CNN is best at lr 0.01", {"arch": "gn1d"}, "lr",
                  (0.01,))),
    reported=(Reported({"arch": "gn2d", "activation": "silu", "lr": 0.001}, 0.641),
              Reported({"arch": "gn1d", "activation": "elu", "lr": 0.01}, 0.556)),
    schedule="shortened CPU schedule: gn1d 10 epochs, gn2d 3 epochs, combined 2 epochs "
             "(the seed: 30, 20 and 20)",
))
_short_and_full(Study(
    name="length",
    title="Does variable-length input help the combined model?",
    description="The seed reports its combined 1D + 2D model at 61.3 % with spectrograms "
                "cropped/padded to a fixed 216 frames and 62.2 % with variable-length input. "
                "Here: the combined model with both, lr 0.001, three seeds each.",
    grids=(Grid({"arch": "combined", "lr": 0.001, "epochs": 2},
                {"length": ["fixed", "variable"]}),),
    claims=(Claim("variable-length", "Variable-length input beats fixed 216-frame input "
                  "for the combined model", {"arch": "combined"}, "length", ("variable",)),),
    reported=(Reported({"arch": "combined", "length": "fixed"}, 0.613),
              Reported({"arch": "combined", "length": "variable"}, 0.622)),
    schedule="shortened CPU schedule: 2 epochs (the seed: 20)",
))


# ------------------------------------------------------------------------ expansion

@dataclass
class Planned:
    """One cell × seed of a study, its config, and the run that covers it (if any)."""

    cell: dict
    seed: int
    config: TrainConfig
    run: dict | None = None  # a runs.read_run() record

    @property
    def state(self) -> str:
        """finished | running | queued | missing."""
        return self.run["status"]["state"] if self.run else "missing"


def expand(study: Study, data: str | None = None) -> list[Planned]:
    """One `TrainConfig` per cell × seed, seeds outermost (a queue run in this order gives
    every cell its first seed before any its second)."""
    out = []
    for seed in study.seeds:
        for cell in study.cells():
            opts = {**study.base, **cell, "seed": seed, "data": data}
            cfg = TrainConfig.from_dict(opts)
            cfg.name = f"study-{study.name}-{_slug(study.label(cell))}-s{seed}"
            cfg.study = {"name": study.name, "cell": cell}
            out.append(Planned(cell, seed, cfg.check()))
    return out


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in text.replace(" · ", "-")
                   ).strip("-")


# ------------------------------------------------------------------------ matching

def canonical_data(data) -> str | None:
    """A corpus data string in a comparable form: every folder ``realpath``-ed (relative
    ones from the working folder, else from the app folder), ``kind=`` prefixes dropped
    (the kind is detected from the folder anyway)."""
    if data in (None, ""):
        return None
    parts = []
    for part in str(data).split(","):
        part = part.strip()
        if not part:
            continue
        head, eq, tail = part.partition("=")
        if eq and "/" not in head and os.sep not in head:
            part = tail.strip()
        path = os.path.expanduser(part)
        if not os.path.isabs(path) and not os.path.exists(path):
            alt = os.path.join(str(config.ROOT), path)
            path = alt if os.path.exists(alt) else path
        parts.append(os.path.realpath(path))
    return ",".join(parts)


def comparable(cfg) -> dict:
    """The training options of a config (dict or TrainConfig) that decide what it learns."""
    d = cfg.as_dict() if isinstance(cfg, TrainConfig) else dict(cfg)
    tc = TrainConfig.from_dict(d, strict=False)
    out = {k: v for k, v in _full_dict(tc).items() if k not in IGNORED}
    out["data"] = canonical_data(out.get("data"))
    try:
        out["epochs"] = tc.resolved_epochs()
    except ValueError:
        pass
    out["features"] = dict(sorted((out.get("features") or {}).items()))
    return out


def _full_dict(tc: TrainConfig) -> dict:
    """Every field, defaults included (``as_dict`` leaves out ``length`` when fixed)."""
    from dataclasses import asdict

    return asdict(tc)


def matches(run_config: dict, planned: TrainConfig) -> bool:
    return comparable(run_config) == comparable(planned)


_RANK = {"finished": 3, "running": 2, "queued": 1}


def attach_runs(plan: list[Planned], all_runs: list[dict] | None = None) -> list[Planned]:
    """Give every planned cell × seed the run that covers it: a finished one first (this
    study's own before adopted ones, then the newest), else a running, else a queued one.
    Failed and cancelled runs cover nothing."""
    from ser import runs

    all_runs = runs.list_runs() if all_runs is None else all_runs
    keyed = []
    for r in all_runs:
        state = r["status"].get("state")
        if state not in _RANK:
            continue
        try:
            keyed.append((comparable(r["config"]), r))
        except (TypeError, ValueError):
            continue
    for p in plan:
        want = comparable(p.config)
        found = [r for key, r in keyed if key == want]
        found.sort(key=lambda r: (_RANK[r["status"]["state"]],
                                  (r["config"].get("study") or {}).get("name") == p.config
                                  .study.get("name"), r["run_id"]), reverse=True)
        p.run = found[0] if found else None
    return plan


def plan(study: Study, data: str | None = None, all_runs: list[dict] | None = None
         ) -> list[Planned]:
    """`expand` with each cell × seed's covering run attached."""
    return attach_runs(expand(study, data), all_runs)


def progress(planned: list[Planned]) -> dict:
    """Counts of finished / running / queued / missing cells × seeds, and the total."""
    counts = {"finished": 0, "running": 0, "queued": 0, "missing": 0}
    for p in planned:
        counts[p.state] += 1
    counts["total"] = len(planned)
    return counts


def launch(study: Study, data: str | None = None, *, max_parallel: int = 1,
           threads: int | None = None, device: str | None = None,
           start: Callable | None = None) -> list[str]:
    """Queue every missing cell × seed through the runs queue; returns the new run ids.
    Cells × seeds already finished, running or queued (by this study or by hand with the
    same options) are not launched again. ``threads`` per run defaults to every core, or
    to an equal share of them when ``max_parallel`` runs go at once."""
    from ser import runs

    if threads is None and max_parallel > 1:
        threads = max(1, (os.cpu_count() or 1) // max_parallel)

    start = start or (lambda cfg: runs.start(cfg, max_parallel=max_parallel))
    launched = []
    for p in plan(study, data):
        if p.state != "missing":
            continue
        cfg = p.config
        if threads is not None:
            cfg.threads = int(threads)
        if device:
            cfg.device = device
        launched.append(start(cfg))
    return launched


# ------------------------------------------------------------------------ report

def _stats(values: list[float]) -> dict:
    n = len(values)
    mean = sum(values) / n if n else None
    std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2 else None)
    return {"mean": mean, "std": std, "values": values}


def run_figures(run: dict) -> dict | None:
    """Test accuracy/UAR (report.json) and validation UAR/accuracy at the best epoch
    (metrics.jsonl) of a finished run; None without a report."""
    from ser import runs

    rep = run.get("report")
    if not rep or rep.get("accuracy") is None:
        return None
    try:
        epochs = [m for m in runs.metrics(run["run_id"]) if m.get("type") == "epoch"]
    except (runs.RunError, ValueError, OSError):
        epochs = []
    best = max(epochs, key=lambda m: m["val_uar"]) if epochs else {}
    prot = rep.get("protocol") or {}
    return {"run_id": run["run_id"], "test_accuracy": float(rep["accuracy"]),
            "test_uar": float(rep["uar"]), "val_uar": best.get("val_uar"),
            "val_accuracy": best.get("val_accuracy"), "test_n": rep.get("n"),
            "protocol": prot.get("protocol"), "protocol_name": prot.get("protocol_name"),
            "test_speakers": len((prot.get("speakers") or {}).get("test") or []),
            "corpus": (rep.get("data") or {}).get("corpus"),
            "synthetic": bool((rep.get("data") or {}).get("synthetic")),
            "epochs_run": len(epochs)}


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test p-value of two samples (None when it cannot be computed:
    fewer than two values, or no spread at all)."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    res = stats.ttest_ind(a, b, equal_var=False)
    p = float(res.pvalue)
    if math.isnan(p):
        return None if sum(a) / len(a) == sum(b) / len(b) else 0.0
    return p


def verdict(claim: Claim, cells: list[dict]) -> dict:
    """The verdict of ``claim`` on aggregated ``cells`` (each with ``cell``, ``label``,
    ``n_seeds`` and per-metric ``{"mean", "std", "values"}``):

    - **incomplete**: a compared cell has fewer than `MIN_SEEDS` finished seeds;
    - **confirmed**: the best claimed cell beats the best other cell (by mean) and the
      Welch t-test between them gives p < `ALPHA`;
    - **not confirmed**: some other cell beats the best claimed cell with p < `ALPHA`;
    - **within noise**: otherwise.
    """
    group = [c for c in cells if all(c["cell"].get(k) == v for k, v in claim.among.items())]
    claimed = [c for c in group if c["cell"].get(claim.axis) in claim.best]
    others = [c for c in group if c["cell"].get(claim.axis) not in claim.best]
    out = {"id": claim.id, "text": claim.text, "metric": claim.metric,
           "metric_name": METRICS[claim.metric], "verdict": "incomplete", "p_value": None,
           "claimed": None, "rival": None, "detail": ""}
    short = [c["label"] for c in group if c["n_seeds"] < MIN_SEEDS]
    if not claimed or not others or short:
        out["detail"] = ("needs ≥ 2 finished seeds in " + ", ".join(short) if short else
                         "the cells this claim compares are not in the study")
        return out

    def mean(c):
        return c[claim.metric]["mean"]

    best_claimed = max(claimed, key=mean)
    best_other = max(others, key=mean)
    name = METRICS[claim.metric]
    out.update(claimed=best_claimed["label"], rival=best_other["label"])
    diff = mean(best_claimed) - mean(best_other)
    p = welch_p(best_claimed[claim.metric]["values"], best_other[claim.metric]["values"])
    out["p_value"], out["difference"] = p, diff
    what = (f"{best_claimed['label']} {_pct(mean(best_claimed))} vs "
            f"{best_other['label']} {_pct(mean(best_other))} {name}, difference "
            f"{diff * 100:+.1f} points, Welch p = {'n/a' if p is None else f'{p:.3f}'}")
    if diff > 0 and p is not None and p < ALPHA:
        out["verdict"] = "confirmed"
    elif diff < 0 and p is not None and p < ALPHA:
        out["verdict"] = "not confirmed"
    else:
        out["verdict"] = "within noise"
    out["detail"] = what
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def report(study: Study, data: str | None = None, all_runs: list[dict] | None = None
           ) -> dict:
    """Per cell: mean ± std over the finished seeds of test accuracy/UAR and validation
    UAR/accuracy, the seed's figure where it reports one; per claim: the verdict; the
    protocol (from the runs' reports), the schedule and the commands. JSON-ready."""
    planned = plan(study, data, all_runs)
    axes = study.axes()
    cells = []
    protocols = []
    for cell in study.cells():
        mine = [p for p in planned if p.cell == cell]
        figs = [f for p in mine if p.state == "finished" for f in [run_figures(p.run)] if f]
        protocols += figs
        row = {"cell": cell, "label": cell_label(cell, axes),
               "options": cell_label(cell, study.varied() or list(cell)),
               "n_seeds": len(figs),
               "planned_seeds": len(mine), "seeds": [p.seed for p in mine
                                                      if p.state == "finished"],
               "runs": [f["run_id"] for f in figs],
               "complete": len(figs) >= MIN_SEEDS,
               "states": {p.seed: p.state for p in mine}}
        for m in METRICS:
            row[m] = _stats([float(f[m]) for f in figs if f.get(m) is not None])
        row["seed_reported"] = next((r.value for r in study.reported
                                     if all(cell.get(k) == v for k, v in r.cell.items())),
                                    None)
        cells.append(row)
    claims = [verdict(c, cells) for c in study.claims]
    return {"study": study.name, "title": study.title, "description": study.description,
            "schedule": study.schedule, "seeds": list(study.seeds), "axes": axes,
            "noise_rule": NOISE_RULE, "alpha": ALPHA, "min_seeds": MIN_SEEDS,
            "command": study.command(data or "DIR"),
            "full_command": study.full_command(data or "DIR"),
            "seed_source": SEED_NOTE, "protocol": _protocol(protocols),
            "progress": progress(planned), "cells": cells, "claims": claims,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _protocol(figs: list[dict]) -> dict:
    """What the runs were tested on (from their reports): corpus, split, test speakers and
    clips; ``mixed`` when the runs disagree."""
    if not figs:
        return {}
    keys = {(f["corpus"], f["protocol_name"], f["test_speakers"], f["test_n"], f["synthetic"])
            for f in figs}
    corpus, name, speakers, n, synthetic = sorted(keys, key=str)[0]
    return {"corpus": corpus, "protocol_name": name, "test_speakers": speakers,
            "test_clips": n, "synthetic": synthetic, "mixed": len(keys) > 1}


def protocol_sentence(rep: dict) -> str:
    """e.g. ``CREMA-D speaker-independent split, 19 test actors, 1,558 clips; shortened
    CPU schedule: …``."""
    p = rep.get("protocol") or {}
    if not p:
        head = "no finished runs yet"
    else:
        synth = " (synthetic)" if p.get("synthetic") else ""
        head = (f"{p.get('corpus')}{synth} {p.get('protocol_name')} split, "
                f"{p.get('test_speakers')} test speakers, {p.get('test_clips') or 0:,} test "
                "clips" + ("; the runs were tested on different data" if p.get("mixed")
                           else ""))
    return f"{head}; {rep.get('schedule', '')}"


# ------------------------------------------------------------------------ shipping

def studies_dir() -> Path:
    return config.models_dir() / "studies"


def ship(study: Study, data: str | None = None, folder: Path | None = None) -> Path:
    """Write the study's report to ``models/studies/<name>.json`` (atomically), so the app
    shows it without the runs."""
    rep = report(study, data)
    rep["shipped"] = True
    dest = Path(folder or studies_dir()) / f"{safe_name(study.name, 'study name')}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_json(dest, rep)
    return dest


def shipped_reports(folder: Path | None = None) -> dict[str, dict]:
    """Shipped study reports by name (damaged files skipped)."""
    root = Path(folder or studies_dir())
    out = {}
    if not root.is_dir():
        return out
    for f in sorted(root.glob("*.json")):
        try:
            rep = read_json(f)
        except (OSError, ValueError):
            continue
        if isinstance(rep, dict) and rep.get("cells") is not None:
            out[rep.get("study") or f.stem] = rep
    return out
