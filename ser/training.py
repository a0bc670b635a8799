"""The training loop: data → model → best checkpoint → test report → card.

`fit` is the one way a model is trained: the CLI, the Train page (through `ser.runs`, which
runs the CLI in its own process) and the tests all call it. Defaults follow the seeds: Adam,
lr 1e-3, cross-entropy, batch 64, 30 epochs for 1D and 20 for 2D models, one
noise-augmented copy of every training clip. Early stopping watches validation UAR and the
best weights are restored before the test set is touched.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ser import config
from ser.adversary import corpus_adversary
from ser.augment import freq_mixstyle, random_denoise, random_floor, shift_augment, spec_augment
from ser.bundle import library_versions
from ser.card import Card
from ser.dataset import Prepared, input_lengths, predict_proba, prepare, trim
from ser.devices import device_description, pick_device, use_threads
from ser.distill import attach_teachers
from ser.distributed import Dist, cpu_threads, wrap
from ser.metrics import classification_metrics, full_report, predictions_frame
from ser.models import create_model, describe
from ser.recipe import RunCancelledError, TrainConfig
from ser.warmstart import attach_init

EventFn = Callable[[dict], None]


@dataclass
class FitResult:
    model: torch.nn.Module
    card: Card
    report: dict
    predictions: pd.DataFrame
    history: list[dict]
    stopped: str  # "finished" | "early_stopped" | "cancelled"


def fit(cfg: TrainConfig, *, on_event: EventFn | None = None,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        dist: Dist | None = None) -> FitResult | None:
    """Train ``cfg.arch`` and evaluate its best checkpoint on the test part.

    ``on_event`` receives step events (``type="step"``: step, epoch, loss, samples_per_s, lr)
    and epoch events (``type="epoch"``: train/val loss, accuracy, UAR, lr, elapsed, eta).
    ``should_stop`` is polled every step; when it returns True the loop stops, the best
    weights so far are kept and ``stopped == "cancelled"``.

    ``dist`` (a `ser.distributed.Dist` from inside a torchrun worker) trains this rank's
    shard of every batch under DistributedDataParallel; only rank 0 evaluates, emits
    events and gets a result (the other ranks get None).
    """
    dist = dist or Dist()
    emit, stop, say = callbacks(dist, on_event, should_stop, progress)
    input_space = cfg.input_space()  # fails early, before any feature is extracted
    device = training_device(cfg, dist, say)
    clock = Clock()
    data = prepared_data(cfg, input_space, dist, say, should_stop)
    say("building the model", 0, 0)
    model, net = build_model(cfg, data, device, dist)
    epochs = cfg.resolved_epochs()
    adversary = corpus_adversary(cfg, data, model, device)
    batches = training_batches(cfg, data, device, dist, adversary)
    opt = torch.optim.Adam(trainable(net, adversary), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = Schedule(cfg.schedule, opt, cfg.lr, epochs, batches.steps_per_epoch)
    step = TrainStep(net, opt, class_weights(cfg, data, device), cfg.label_smoothing,
                     cfg.grad_clip, device, world=dist.world, distill=distillation(cfg, data),
                     adversary=adversary, precision=cfg.precision)
    augment = BatchAugmenter(cfg, data.spaces, batches.augment_generator, device=device,
                             fs2_stats=data.normalisation.get("fs2"))
    best = BestWeights(cfg.patience, average=cfg.swa, epochs=epochs)
    history, stopped = [], "finished"
    clock.start_training()
    if cfg.readout_l2:  # solved in one step instead of epochs
        emit(readout_epoch(cfg, model, data, device, dist, best, opt, clock, say, stop, history))
        epochs = 0
    for epoch in range(1, epochs + 1):
        say("training", epoch - 1, epochs)
        batches.set_epoch(epoch)
        train = run_epoch(batches, augment, step, schedule, epoch, cfg.log_every, emit,
                          stop, clock, dist=dist)
        if train.cancelled and train.n == 0:
            stopped = "cancelled"
            break
        say(f"validating epoch {epoch}", epoch, epochs)
        val = validate(model, data, device, dist)
        improved = best.update(val["uar"], epoch, model, keep=dist.is_main)
        history.append(epoch_event(epoch, epochs, step.count, train, val, opt, improved,
                                   clock))
        emit(history[-1])
        schedule.after_epoch(val["uar"])
        if train.cancelled or best.exhausted:
            stopped = "cancelled" if train.cancelled else "early_stopped"
            break
    train_time = clock.training_seconds()
    step.finish()
    if not dist.is_main:
        return None
    best.restore(model, data, device)
    model.to("cpu")
    say("testing on the held-out clips", 0, len(data.labels["test"]))
    report, preds = test_report(model, data)
    card = build_card(cfg, data, report, history, best, stopped, device, train_time, clock,
                      dist)
    report["protocol"], report["data"] = card.split, card.data
    return FitResult(model, card, report, preds, history, stopped)


# ------------------------------------------------------------------------ helpers

def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Clock:
    """Wall-clock times of a run: since the start, and since training (not data) began."""

    def __init__(self) -> None:
        self.t0 = self.t_train = time.time()

    def start_training(self) -> None:
        self.t_train = time.time()

    def elapsed(self) -> float:
        return time.time() - self.t0

    def training_seconds(self) -> float:
        return time.time() - self.t_train


class TrainingError(ValueError):
    """Training cannot go on (e.g. a non-finite loss); the message says why."""


def prepared_data(cfg: TrainConfig, input_space: str, dist: Dist, say, should_stop):
    """The run's features (and teachers' answers), checked for empty parts. A distributed
    worker gets them from the cache its supervisor filled (which checks for a cancel
    itself; a rank leaving alone would strand the others); otherwise a cancel ends the
    preparation with `RunCancelledError`."""
    preparing = say if dist.enabled else stoppable(say, should_stop)
    data = attach_init(attach_teachers(prepare(cfg, input_space, progress=preparing), cfg,
                                       progress=preparing), cfg)
    check_parts(data, cfg.batch_size, dist)
    return data


def stoppable(progress, should_stop):
    """``progress`` that also checks ``should_stop`` and raises `RunCancelledError` when it is
    true: data preparation (extraction, teacher scoring) can take half an hour and must
    end on a cancel or SIGTERM as promptly as the training loop does."""
    if should_stop is None:
        return progress

    def check(stage: str, done: int, total: int) -> None:
        if progress:
            progress(stage, done, total)
        if should_stop():
            raise RunCancelledError(f"cancelled while {stage}; nothing was trained, so nothing "
                               "is saved")
    return check


def training_device(cfg: TrainConfig, dist: Dist, say) -> torch.device:
    """This process's device (its rank's under torchrun) with its CPU threads set. A
    precision the device cannot train in is refused here, before any feature is extracted
    (`check_precision`); a note about it goes to ``say``."""
    device = dist.device if dist.enabled else pick_device(cfg.device)
    note = check_precision(cfg.precision, device)
    use_threads(device, cpu_threads(dist, cfg.threads) if dist.enabled else cfg.threads)
    if note:
        say(note, 0, 0)
    return device


def callbacks(dist: Dist, on_event, should_stop, progress):
    """``(emit, stop, say)`` for `fit`: events and stages from rank 0 only (no-ops
    elsewhere); in a distributed run every rank stops when any is asked to."""
    emit = on_event if dist.is_main and on_event else (lambda e: None)
    local = should_stop or (lambda: False)
    stop = (lambda: dist.any(local())) if dist.enabled else local
    say = progress if progress and dist.is_main else (lambda stage, done, total: None)
    return emit, stop, say


def build_model(cfg: TrainConfig, data: Prepared, device: torch.device, dist: Dist
                ) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The seeded model on ``device`` and the module to train (DDP-wrapped when
    distributed). The same initial weights on every rank (DDP also broadcasts them);
    dropout masks of their own per rank."""
    set_seed(cfg.seed)
    model = create_model(cfg.arch, **cfg.model_kwargs(), **data.features.model_dims())
    if data.init_state is not None:  # a warm start, checked and set by `attach_init`
        model.load_state_dict(data.init_state)
    model.to(device)
    if dist.enabled and dist.rank:
        torch.manual_seed(cfg.seed + 1_000_003 * dist.rank)
    return model, wrap(model, dist)


def trainable(net: torch.nn.Module, adversary: torch.nn.Module | None
              ) -> list[torch.nn.Parameter]:
    """The parameters the optimiser updates: the model's, and the corpus adversary's."""
    return list(net.parameters()) + (list(adversary.parameters()) if adversary else [])


def validate(model: torch.nn.Module, data: Prepared, device: torch.device, dist: Dist
             ) -> dict:
    """Validation metrics: one rank scores the validation clips, the others take its
    verdict."""
    val = None
    if dist.is_main:
        val = classification_metrics(data.labels["val"].numpy(),
                                     predict_proba(model, data.inputs["val"], device))
    return dist.broadcast(val)


def training_batches(cfg: TrainConfig, data: Prepared, device: torch.device, dist: Dist,
                     adversary=None) -> Batches:
    """The run's training batches: this rank's share, with the rows' weights, teachers'
    answers, corpora (for the adversary) and speakers (one-speaker batches) attached."""
    return Batches(data.inputs["train"], data.labels["train"], cfg.batch_size, device,
                   cfg.seed, data.train_weights, rank=dist.rank, world=dist.world,
                   soft=data.soft, domains=adversary and adversary.targets,
                   groups=data.train_groups)


def check_parts(data: Prepared, batch_size: int | None = None, dist: Dist | None = None
                ) -> None:
    if dist is not None and dist.enabled and (batch_size or 0) < dist.world:
        raise ValueError(f"batch_size {batch_size} is smaller than the {dist.world} "
                         "processes: every process needs at least one clip per batch.")
    if any(len(data.labels[p]) == 0 for p in ("train", "val", "test")):
        raise ValueError("The split left an empty train, validation or test part; use a "
                         "larger corpus.")
    for part, tensors in data.inputs.items():
        for t in tensors:
            if not torch.isfinite(t).all():
                rows = int((~torch.isfinite(t.reshape(len(t), -1))).any(dim=1).sum())
                raise TrainingError(f"{rows} {part} clip(s) have NaN or infinite features "
                                    "after normalisation; refusing to train on them.")


def distillation(cfg: TrainConfig, data: Prepared) -> tuple[float, float] | None:
    """``(weight, temperature)`` of the teacher term when the run has soft targets."""
    return None if data.soft is None else (float(cfg.distill), float(cfg.distill_temperature))


def class_weights(cfg: TrainConfig, data: Prepared, device: torch.device
                  ) -> torch.Tensor | None:
    """Inverse-frequency weights ``N / (C · n_c)`` of the training labels, or None."""
    if not cfg.class_weights:
        return None
    counts = torch.bincount(data.labels["train"], minlength=config.N_CLASSES).float()
    return (counts.sum() / (config.N_CLASSES * counts.clamp(min=1))).to(device)


class Batches:
    """Shuffled mini-batches of the training tensors, one permutation per epoch (seeded).
    With ``weights`` an epoch instead draws as many rows with replacement, each in
    proportion to its weight (corpus-balanced batches).

    On a GPU the whole feature tensor moves to the device once, so a step copies nothing.

    Distributed (``world`` > 1): ``batch_size`` is the global batch. Every rank draws the
    same permutation (its own generator, which nothing else draws from), and rank ``r``
    takes rows ``r, r + world, ...`` of each global batch; ``global_labels`` gives the whole
    batch's labels so the loss can be normalised by the global batch (`TrainStep`). A last
    batch with fewer rows than ranks is dropped (every rank must take part in every step).
    In one process the permutation and batch augmentation share one generator, as they
    always have, so a run without augmentation draws the same batches either way.

    With ``soft`` (the teachers' probabilities per row, `ser.distill`), ``soft_batch``
    holds the rows of the batch last yielded (this rank's share), like ``global_labels``;
    ``domains`` (one-hot corpus per row, `ser.adversary`) likewise gives ``domain_batch``.

    Variable-length inputs (``inputs.lengths`` set, `ser.dataset.Inputs`) are drawn
    length-bucketed: the seeded permutation is cut into pools of `BUCKET_POOL` batches,
    each pool sorted by length and cut into batches, and the batches shuffled; every batch
    is trimmed to its longest clip (the rest of the padding is the standardised floor).

    With ``groups`` (one label per row, e.g. its speaker; one process, no weights) every
    batch holds rows of one group: each epoch the seeded permutation is split by group,
    each group's rows cut into ``ceil(n / batch_size)`` batches of near-equal size, and the
    batches shuffled; the rows of a group that has only one join the epoch's first batch
    (no batch of one row). The number of steps is the same every epoch.
    """

    #: Batches per pool whose clips are sorted by length before batching.
    BUCKET_POOL = 50

    def __init__(self, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor,
                 batch_size: int, device: torch.device, seed: int,
                 weights: np.ndarray | None = None, *, rank: int = 0, world: int = 1,
                 soft: np.ndarray | None = None, domains: torch.Tensor | None = None,
                 groups: np.ndarray | None = None):
        if groups is not None and (weights is not None or world > 1):
            raise ValueError("One-group batches are drawn without weights, in one process.")
        self.groups = None
        if groups is not None:
            _, codes = np.unique(np.asarray(groups), return_inverse=True)
            self.groups = torch.as_tensor(codes.ravel())
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.lengths = input_lengths(inputs)
        if self.lengths is not None and world > 1:
            raise ValueError("Variable-length batches are not available for distributed "
                             "training.")
        self.on_gpu = device.type != "cpu"
        self.inputs = tuple(x.to(device) for x in inputs) if self.on_gpu else inputs
        self.labels = labels.to(device) if self.on_gpu else labels
        self.soft = None if soft is None else torch.as_tensor(soft, dtype=torch.float32).to(
            device)
        self.soft_batch: torch.Tensor | None = None
        self.domains = None if domains is None else torch.as_tensor(domains).to(device)
        self.domain_batch: torch.Tensor | None = None
        self.batch_size, self.device = batch_size, device
        self.rank, self.world = rank, world
        self.n = len(labels)
        self.steps_per_epoch = math.ceil(self.n / batch_size)
        if self.groups is not None:
            sizes = torch.bincount(self.groups)
            self.steps_per_epoch = max(1, int(sum(math.ceil(int(n) / batch_size)
                                                  for n in sizes if n > 1)))
        if world > 1 and 0 < self.n % batch_size < world:
            self.steps_per_epoch -= 1
        self.generator = torch.Generator().manual_seed(seed)
        self.augment_generator = (self.generator if world == 1 else
                                  torch.Generator().manual_seed(seed + 1_000_003 * (rank + 1)))
        self.epoch_number = 0
        self.global_labels: torch.Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        """Epoch ``epoch``'s order is the ``epoch``-th permutation of the seeded generator,
        the same on every rank; epochs must be drawn in order (1, 2, ...)."""
        if epoch != self.epoch_number + 1:
            raise ValueError(f"epoch {epoch} asked for after epoch {self.epoch_number}")
        self.epoch_number = epoch

    def bucketed(self, perm: torch.Tensor) -> list[torch.Tensor]:
        """Batches of similar lengths from one epoch's (seeded) draw ``perm``."""
        lengths = torch.as_tensor(self.lengths)
        pool = self.batch_size * self.BUCKET_POOL
        batches = []
        for start in range(0, len(perm), pool):
            chunk = perm[start:start + pool]
            chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
            batches += list(chunk.split(self.batch_size))
        order = torch.randperm(len(batches), generator=self.generator)
        return [batches[i] for i in order]

    def grouped(self, perm: torch.Tensor) -> list[torch.Tensor]:
        """One epoch's batches of one group each, from the seeded draw ``perm``."""
        order = self.groups[perm]
        batches, alone = [], []
        for g in torch.unique(order):
            rows = perm[order == g]
            if len(rows) == 1:  # a group of one row would make a batch of one
                alone.append(rows)
                continue
            batches += list(torch.tensor_split(rows, math.ceil(len(rows) / self.batch_size)))
        shuffle = torch.randperm(len(batches), generator=self.generator)
        batches = [batches[i] for i in shuffle]
        if alone:  # such rows join the first batch of the epoch
            batches[:1] = [torch.cat(batches[:1] + alone)]
        return batches

    def epoch(self):
        perm = (torch.randperm(self.n, generator=self.generator) if self.weights is None else
                torch.multinomial(self.weights, self.n, replacement=True,
                                  generator=self.generator))
        buckets = (self.bucketed(perm) if self.lengths is not None else
                   self.grouped(perm) if self.groups is not None else None)
        for b in range(self.steps_per_epoch):
            idx = (buckets[b] if buckets is not None else
                   perm[b * self.batch_size:(b + 1) * self.batch_size])
            if self.world > 1:
                self.global_labels = self.labels[idx.to(self.device) if self.on_gpu else idx]
                idx = idx[self.rank::self.world]
            idx = idx.to(self.device) if self.on_gpu else idx
            xb = [x[idx].to(self.device) for x in self.inputs]
            if self.soft is not None:
                self.soft_batch = self.soft[idx]
            if self.domains is not None:
                self.domain_batch = self.domains[idx]
            if buckets is not None and self.lengths is not None:
                longest = int(self.lengths[idx.cpu().numpy()].max())
                xb = [trim(x, longest) for x in xb]
            yield b, xb, self.labels[idx].to(self.device)


class Schedule:
    """The learning-rate schedule: ``none``, ``cosine`` (one cycle, stepped per batch, 15 %
    warm-up) or ``plateau`` (halve after 2 epochs without a better validation UAR)."""

    def __init__(self, kind: str, opt: torch.optim.Optimizer, lr: float, epochs: int,
                 steps_per_epoch: int):
        self.kind, self.sched = kind, None
        if kind == "cosine":
            self.sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15,
                anneal_strategy="cos")
        elif kind == "plateau":
            self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max",
                                                                    factor=0.5, patience=2)
        elif kind != "none":
            raise ValueError(f"Unknown schedule {kind!r}: use none, cosine or plateau.")

    def after_step(self) -> None:
        if self.kind == "cosine":
            self.sched.step()

    def after_epoch(self, val_uar: float) -> None:
        if self.kind == "plateau":
            self.sched.step(val_uar)


class BatchAugmenter:
    """Per-batch augmentation of standardised inputs: random denoising and floor, MixStyle
    of the band statistics, band/time shifts and SpecAugment on the spectrogram, then
    mixup of whole examples. Returns ``(inputs, lam, second_labels)``; without mixup
    ``lam`` is 1 and ``second_labels`` None. `mixed` applies the last batch's mixing to
    per-row targets (the teachers' probabilities)."""

    def __init__(self, cfg: TrainConfig, spaces: tuple[str, ...], generator: torch.Generator,
                 *, on_gpu: bool | None = None, fs2_stats: dict | None = None, device=None):
        if on_gpu is None:
            on_gpu = device is not None and torch.device(device).type != "cpu"
        self.cfg = cfg
        self.fs2 = spaces.index("fs2") if "fs2" in spaces else None
        self.gen = generator
        self.spec_gen = None if on_gpu else generator  # a CPU generator cannot drive CUDA
        self.mix_rng = np.random.default_rng(cfg.seed)
        self.style_rng = np.random.default_rng([cfg.seed, 1])  # MixStyle's own stream
        self.last_mix: tuple[float, torch.Tensor] | None = None
        self.floor = None  # (mean, std, top_db) of the FS2 standardisation
        if self.fs2 is not None and (cfg.random_floor or cfg.random_denoise):
            self.floor = tuple(torch.as_tensor(np.asarray(fs2_stats[k]), dtype=torch.float32,
                                               device=device) for k in ("mean", "std"))
            self.top_db = cfg.feature_config().top_db

    def __call__(self, xb: list[torch.Tensor], yb: torch.Tensor):
        cfg = self.cfg
        if self.floor is not None and cfg.random_denoise:
            xb[self.fs2] = random_denoise(xb[self.fs2], *self.floor, p=cfg.random_denoise,
                                          top_db=self.top_db, generator=self.spec_gen)
        if self.floor is not None and cfg.random_floor:
            xb[self.fs2] = random_floor(xb[self.fs2], *self.floor, low_db=cfg.random_floor,
                                        high_db=self.top_db, generator=self.spec_gen)
        if self.fs2 is not None and cfg.mixstyle:
            xb[self.fs2] = freq_mixstyle(xb[self.fs2], self.style_rng, p=cfg.mixstyle)
        if self.fs2 is not None and (cfg.freq_shift or cfg.time_shift):
            xb[self.fs2] = shift_augment(xb[self.fs2], freq=cfg.freq_shift, time=cfg.time_shift,
                                         generator=self.spec_gen)
        if self.fs2 is not None and cfg.spec_augment:
            xb[self.fs2] = spec_augment(xb[self.fs2], generator=self.spec_gen)
        if cfg.mixup <= 0:
            self.last_mix = None
            return xb, 1.0, None
        lam = float(self.mix_rng.beta(cfg.mixup, cfg.mixup))
        order = torch.randperm(len(yb), generator=self.gen).to(yb.device)
        self.last_mix = (lam, order)
        return [lam * x + (1 - lam) * x[order] for x in xb], lam, yb[order]

    def mixed(self, targets: torch.Tensor | None) -> torch.Tensor | None:
        """Per-row ``targets`` of the last batch, mixed as its inputs were."""
        if targets is None or self.last_mix is None:
            return targets
        lam, order = self.last_mix
        return lam * targets + (1 - lam) * targets[order]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of a training step (`TrainConfig.precision`), None for float32:
    "auto" is float16 on CUDA and float32 elsewhere, "bf16" bfloat16 on any device."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda":
        return torch.float16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """The autocast context of a training forward pass: to ``dtype`` on ``device``, or
    nothing (float32) when ``dtype`` is None (`autocast_dtype`)."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def check_precision(precision: str, device: torch.device) -> str:
    """Refuse (`TrainingError`) a precision this device cannot train in, before any feature
    is extracted; returns a note for the log ("" when there is nothing to say)."""
    if precision != "bf16":
        return ""
    if not torch.amp.is_autocast_available(device.type):
        raise TrainingError(f"bfloat16 training (precision bf16) is not available on "
                            f"{device.type}; use precision auto or fp32.")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError(f"{torch.cuda.get_device_name(device)} has no bfloat16 support; "
                            "use precision auto (float16 mixed precision) or fp32.")
    if device.type == "cpu" and not cpu_has_bf16():
        return ("bfloat16 training on a CPU without bfloat16 instructions (AVX512-BF16 or "
                "AMX) is emulated: expect it slower than float32, not faster.")
    return ""


def precision_problem(precision: str, device: str = "auto") -> str:
    """What a run with ``precision`` on ``device`` (a Train-page choice: auto, cpu, cuda)
    would be told before it starts: `check_precision`'s refusal or note, "" when none."""
    from ser.devices import pick_device

    try:
        return check_precision(precision, pick_device(device))
    except (TrainingError, ValueError) as exc:
        return str(exc)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (oneDNN's own test)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class TrainStep:
    """One optimisation step: forward (under autocast when ``precision`` asks for it:
    `autocast_dtype`), loss (class weights, label smoothing, mixup; with ``distill`` =
    (weight, temperature) the teachers' term, `ser.distill.distill_loss`), backward (loss
    scaled for float16), gradient clipping, update. The weights stay float32."""

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer,
                 weight: torch.Tensor | None, label_smoothing: float, grad_clip: float,
                 device: torch.device, *, world: int = 1,
                 distill: tuple[float, float] | None = None, adversary=None,
                 precision: str = "auto"):
        self.model, self.opt, self.weight, self.world = model, opt, weight, world
        self.distill, self.adversary = distill, adversary
        self.smoothing, self.clip, self.device = label_smoothing, grad_clip, device
        self.dtype = autocast_dtype(precision, device)
        # float16 needs the loss scaled against underflow; bfloat16 has float32's range.
        self.scaler = (torch.amp.GradScaler(device.type) if self.dtype == torch.float16
                       else None)
        self.count = 0

    def loss(self, logits: torch.Tensor, y: torch.Tensor, norm: torch.Tensor | None = None
             ) -> torch.Tensor:
        if norm is None:
            return F.cross_entropy(logits.float(), y, weight=self.weight,
                                   label_smoothing=self.smoothing)
        return F.cross_entropy(logits.float(), y, weight=self.weight,
                               label_smoothing=self.smoothing, reduction="sum") / norm

    def with_teachers(self, loss: torch.Tensor, logits: torch.Tensor, soft: torch.Tensor,
                      global_labels: torch.Tensor | None) -> torch.Tensor:
        """``(1 − w) · loss + w · teacher term``; distributed, the term is summed and divided
        by the global batch's share of this rank, as the labels' loss is."""
        from ser.distill import distill_loss

        weight, temperature = self.distill
        if self.world > 1 and global_labels is not None:
            term = distill_loss(logits, soft, temperature, "sum") / (
                len(global_labels) / self.world)
        else:
            term = distill_loss(logits, soft, temperature)
        return (1 - weight) * loss + weight * term

    def global_norm(self, global_labels: torch.Tensor) -> torch.Tensor:
        """What this rank divides its loss sum by so that DDP's mean over ranks is the
        global batch's mean loss: the global batch's size (or class-weight sum) / ranks."""
        total = (self.weight[global_labels].sum() if self.weight is not None
                 else torch.tensor(float(len(global_labels)), device=global_labels.device))
        return total / self.world

    def finish(self) -> None:
        """After the last step: detach the corpus adversary from the model."""
        if self.adversary is not None:
            self.adversary.close()

    def __call__(self, xb, yb, lam: float = 1.0, yb2=None, global_labels=None, soft=None,
                 domains=None) -> tuple[torch.Tensor, torch.Tensor]:
        norm = None if self.world == 1 or global_labels is None else self.global_norm(
            global_labels)
        with autocast(self.device, self.dtype):
            logits = self.model(*xb)
            loss = self.loss(logits, yb, norm)
            if yb2 is not None:
                loss = lam * loss + (1 - lam) * self.loss(logits, yb2, norm)
            if self.distill is not None and soft is not None:
                loss = self.with_teachers(loss, logits, soft, global_labels)
        if self.adversary is not None and domains is not None:
            # Reported losses stay the emotion task's; the corpus term only trains.
            reported = loss.detach()
            loss = loss + self.adversary.loss(domains)
        else:
            reported = None
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.count += 1
        if reported is not None:
            loss = reported
        if norm is not None:  # report this rank's mean loss, as one process would
            loss = loss * norm / max(len(yb), 1)
        return loss.detach(), logits.detach()


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: int = 0
    n: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    corpus_accuracy: float | None = None  # the corpus adversary's, when there is one

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.n, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.n, 1)


def run_epoch(batches: Batches, augment: BatchAugmenter, step: TrainStep, schedule: Schedule,
              epoch: int, log_every: int, emit: EventFn, stop: Callable[[], bool],
              clock: Clock, *, dist: Dist | None = None) -> EpochStats:
    """One pass over the shuffled training set; emits a step event every ``log_every``.
    Distributed, ``stop`` must be collective (every rank stops at the same step) and the
    epoch's loss, accuracy and count are summed over the ranks."""
    step.model.train()
    stats, t_epoch = EpochStats(), time.time()
    window_t, window_n = time.time(), 0
    for b, xb, yb in batches.epoch():
        if stop():
            stats.cancelled = True
            break
        xb, lam, yb2 = augment(xb, yb)
        loss, logits = step(xb, yb, lam, yb2, global_labels=batches.global_labels,
                            soft=augment.mixed(batches.soft_batch),
                            domains=augment.mixed(batches.domain_batch))
        if not torch.isfinite(loss):
            raise TrainingError(
                f"The training loss became {float(loss)} at step {step.count} (epoch {epoch}): "
                "training diverged or was fed invalid features. Nothing was saved. Try a "
                "lower learning rate; if it persists, the feature cache may be damaged.")
        schedule.after_step()
        bs = len(yb)
        stats.loss_sum += float(loss) * bs
        stats.correct += int((logits.argmax(1) == yb).sum())
        stats.n += bs
        window_n += bs
        if step.count % log_every == 0:
            now = time.time()
            emit({"type": "step", "step": step.count, "epoch": epoch,
                  "epoch_progress": (b + 1) / batches.steps_per_epoch, "loss": float(loss),
                  "samples_per_s": window_n * batches.world / max(now - window_t, 1e-9),
                  "lr": step.opt.param_groups[0]["lr"], "elapsed_s": clock.elapsed()})
            window_t, window_n = now, 0
    stats.seconds = time.time() - t_epoch
    if step.adversary is not None:
        stats.corpus_accuracy = step.adversary.take_accuracy()
    if dist is not None and dist.enabled:
        loss_sum, correct, n = dist.sum([stats.loss_sum, stats.correct, stats.n])
        stats.loss_sum, stats.correct, stats.n = loss_sum, int(correct), int(n)
    return stats


class BestWeights:
    """Early stopping on validation UAR: keeps a CPU copy of the best weights and counts
    epochs without improvement (``patience`` 0 never stops).

    With ``average`` N > 0 it also sums the weights at the end of each of the last N of
    ``epochs`` epochs (stochastic weight averaging over the annealed tail of the schedule).
    `restore` then offers their mean, with BatchNorm statistics measured again on the
    training rows, as one more candidate: it is kept only when its validation UAR beats
    the best epoch's. ``swa`` records the outcome for the card.
    """

    def __init__(self, patience: int, *, average: int = 0, epochs: int = 0):
        self.patience, self.uar, self.epoch, self.bad, self.state = patience, -1.0, 0, 0, None
        self.average, self.first_averaged = int(average), int(epochs) - int(average) + 1
        self.total: dict[str, torch.Tensor] | None = None
        self.averaged, self.swa = 0, None

    def update(self, uar: float, epoch: int, model: torch.nn.Module, *,
               keep: bool = True) -> bool:
        """Count the epoch; ``keep=False`` tracks the decision without copying weights
        (distributed ranks other than 0, which never save)."""
        if keep and self.average and epoch >= self.first_averaged:
            self._accumulate(model)
        if uar > self.uar:
            self.uar, self.epoch, self.bad = uar, epoch, 0
            if keep:
                self.state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                            model.state_dict().items()})
            return True
        self.bad += 1
        return False

    def _accumulate(self, model: torch.nn.Module) -> None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if self.total is None:
            self.total = {k: v.double() if v.is_floating_point() else v.clone()
                          for k, v in state.items()}
        else:
            for k, v in state.items():
                self.total[k] = self.total[k] + v.double() if v.is_floating_point() else v
        self.averaged += 1

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.bad >= self.patience

    def restore(self, model: torch.nn.Module, data: Prepared | None = None,
                device: torch.device | None = None) -> None:
        """Load the best weights into ``model``, after offering the weight average (when
        one was collected and ``data`` is given)."""
        if self.averaged and data is not None:
            self._offer_average(model, data, device or torch.device("cpu"))
        if self.state is not None:
            model.load_state_dict(self.state)

    def _offer_average(self, model: torch.nn.Module, data: Prepared,
                       device: torch.device) -> None:
        dtypes = {k: v.dtype for k, v in model.state_dict().items()}
        model.load_state_dict({k: (v / self.averaged).to(dtypes[k])
                               if v.is_floating_point() else v for k, v in self.total.items()})
        refresh_batchnorm(model, data.inputs["train"], device)
        uar = classification_metrics(data.labels["val"].numpy(),
                                     predict_proba(model, data.inputs["val"], device))["uar"]
        kept = uar > self.uar
        self.swa = {"epochs": self.averaged, "val_uar": uar, "kept": kept,
                    "best_epoch_val_uar": self.uar}
        if kept:
            self.uar = uar
            self.state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def refresh_batchnorm(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                      device: torch.device, batch_size: int = 256) -> None:
    """Measure every BatchNorm layer's running statistics again over ``inputs`` (a forward
    pass in training mode, no gradients, cumulative averages), as averaged weights need.
    Variable-length inputs go in groups of one length, so padding never enters.

    `torch.optim.swa_utils.update_bn` does the same for one-input models fed by a loader;
    it is not used because the combined model takes two inputs (FS1 and FS2) and a
    variable-length run must not mix lengths (the padding would enter the statistics)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over every batch
    lengths = input_lengths(inputs)
    groups = ([torch.from_numpy(np.flatnonzero(lengths == t)) for t in np.unique(lengths)]
              if lengths is not None else [torch.arange(len(inputs[0]))])
    model.train()
    with torch.no_grad():
        for rows in groups:
            longest = int(lengths[rows.numpy()].max()) if lengths is not None else None
            for i in range(0, len(rows), batch_size):
                idx = rows[i:i + batch_size]
                xb = [x[idx] if longest is None else trim(x[idx], longest) for x in inputs]
                model(*[x.to(device) for x in xb])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def adapt_batchnorm(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                    weight: float = 0.5, device: torch.device | str = "cpu",
                    batch_size: int = 256) -> torch.nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are moved towards those of ``inputs``
    (e.g. one speaker's enrolment clips): ``(1 - weight) * trained + weight * measured`` for
    every running mean and variance; the weights are untouched and ``model`` itself is not
    changed. ``weight`` 0 keeps the trained statistics, 1 replaces them (AdaBN; Li et al.,
    2016). A model without BatchNorm comes back as an unchanged copy.
    `benchmarks/enrolment.py --adapt batchnorm` measures it against the voice offset."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the BatchNorm adaptation weight must lie in 0–1, not {weight}")
    adapted = copy.deepcopy(model)
    norms = [m for m in adapted.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    trained = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    refresh_batchnorm(adapted, inputs, torch.device(device), batch_size)
    with torch.no_grad():
        for m, (mean, var) in zip(norms, trained):
            m.running_mean.mul_(weight).add_(mean, alpha=1.0 - weight)
            m.running_var.mul_(weight).add_(var, alpha=1.0 - weight)
    adapted.eval()
    return adapted


#: How strongly `adapt_classifier` holds the final layer to its trained weights (the
#: weight of ``||W - W0||² + ||b - b0||²`` against the summed cross-entropy of the labelled
#: takes). Chosen on validation speakers only: the mean UAR over the validation corpora of
#: three left-out voice models and `voicelin.pool4-spk` (README, *Labelled takes*).
LABELLED_STRENGTH = 100.0


def adapt_classifier(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                     labels: np.ndarray, strength: float = LABELLED_STRENGTH,
                     device: torch.device | str = "cpu", batch_size: int = 256
                     ) -> torch.nn.Module:
    """A copy of ``model`` whose final linear layer is refitted to labelled takes of one
    voice: ``inputs`` (as the model takes them) said with the emotions ``labels``
    (indices into `ser.config.LABELS`). The layer's weights ``W, b`` minimise the takes'
    summed cross-entropy plus ``strength`` × the squared distance to the trained ones (a
    maximum a posteriori fit around the trained read-out, by L-BFGS in float64); everything
    before the layer is unchanged, and so is ``model``. ``ValueError`` when the model's
    output is not its last linear layer's (nothing to refit) or the labels do not fit."""
    from ser.adversary import classifier_layer

    labels = np.asarray(labels, dtype=np.int64)
    if strength <= 0:
        raise ValueError(f"the strength must be positive, not {strength}")
    if len(labels) != len(inputs[0]) or not len(labels):
        raise ValueError(f"{len(labels)} labels for {len(inputs[0])} takes")
    if labels.min() < 0 or labels.max() >= config.N_CLASSES:
        raise ValueError("labels must index the six emotions")
    adapted = copy.deepcopy(model).to(device).eval()
    layer = classifier_layer(adapted, config.N_CLASSES)
    if layer.bias is None:
        raise ValueError(f"{type(model).__name__}'s final layer has no bias, so it cannot be "
                         "refitted to labelled takes.")
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].detach().float().cpu()))
    try:
        probs = predict_proba(adapted, inputs, device, batch_size)
    finally:
        handle.remove()
    emb = torch.cat(seen).double()
    if emb.dim() != 2 or len(emb) != len(labels):
        raise ValueError(f"{type(model).__name__}'s final layer does not read one embedding "
                         "per clip, so it cannot be refitted to labelled takes.")
    w0 = layer.weight.detach().double().cpu().clone()
    b0 = layer.bias.detach().double().cpu().clone()
    if not np.allclose(torch.softmax(emb @ w0.T + b0, 1).numpy(), probs, atol=1e-3):
        raise ValueError(f"{type(model).__name__}'s output is not its final linear layer's, "
                         "so that layer cannot be refitted to labelled takes.")
    solve_linear(layer, emb, torch.from_numpy(labels),
                 lambda w, b: strength * (((w - w0) ** 2).sum() + ((b - b0) ** 2).sum()),
                 w0=w0, b0=b0, max_iter=200)
    return adapted.eval()


def solve_linear(layer: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor,
                 penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                 w0: torch.Tensor, b0: torch.Tensor, row_weights: torch.Tensor | None = None,
                 scale: float = 1.0, **lbfgs) -> torch.Tensor:
    """Set ``layer``'s weights and bias to the minimum of ``scale`` × (the summed
    cross-entropy of the rows ``x`` (float64) for labels ``y``, each weighted by
    ``row_weights`` when given, + ``penalty(W, b)``), found by full-batch L-BFGS from
    ``w0, b0`` (``lbfgs``: its options); returns the logits there."""
    w, b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], line_search_fn="strong_wolfe", **lbfgs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        ce = F.cross_entropy(x @ w.T + b, y, reduction="none")
        ce = ce.sum() if row_weights is None else (row_weights * ce).sum()
        loss = scale * (ce + penalty(w, b))
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        layer.weight.copy_(w.detach().to(layer.weight.dtype))
        layer.bias.copy_(b.detach().to(layer.bias.dtype))
        return x @ w.T + b


#: L-BFGS iterations at most for a one-step read-out fit (`fit_readout`).
READOUT_MAX_ITER = 1000


def fit_readout(model: torch.nn.Module, data: Prepared, l2: float,
                weights: torch.Tensor | None = None,
                stop: Callable[[], bool] = lambda: False) -> EpochStats:
    """Solve ``model``'s final linear layer as a multinomial logistic regression on the
    training rows: minimise ``sum_i w_i CE_i + l2/2 · ||W||^2`` (the bias is not penalised;
    ``w_i`` the class weight of row i's label, 1 without ``weights``) by full-batch L-BFGS
    in float64, from zero weights. The model must be one linear layer on its (flattened)
    input, as ``voicelin`` is; `TrainingError` otherwise. Returns the fitted rows' loss and
    accuracy as one epoch's statistics (``cancelled`` when ``stop`` said so first)."""
    from ser.adversary import classifier_layer

    t0 = time.time()
    stats = EpochStats()
    try:
        layer = classifier_layer(model, config.N_CLASSES)
    except ValueError:
        layer = None
    not_linear = TrainingError(f"{type(model).__name__} is not one linear layer on its input, "
                               "so its read-out cannot be fitted in one step (readout_l2); it "
                               "works for voicelin.")
    inputs = data.inputs["train"]
    if layer is None or layer.bias is None or len(inputs) != 1:
        raise not_linear
    x = inputs[0].flatten(1).double().cpu()
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach()))
    model.eval()
    probe = inputs[0][:8].to(next(model.parameters()).device)
    try:
        with torch.no_grad():
            model(probe)
    finally:
        handle.remove()
    if (not seen or tuple(seen[0].shape) != (len(probe), x.shape[1])
            or not torch.allclose(seen[0].double().cpu(), x[:len(probe)], atol=1e-5)):
        raise not_linear
    if stop():
        stats.cancelled = True
        return stats
    y = data.labels["train"].cpu()
    w_row = weights.double().cpu()[y] if weights is not None else None
    # scaled by 1/rows: the same minimum, better conditioned for L-BFGS's tolerances
    logits = solve_linear(layer, x, y, lambda w, _b: 0.5 * l2 * (w ** 2).sum(),
                          w0=torch.zeros(config.N_CLASSES, x.shape[1], dtype=torch.float64),
                          b0=torch.zeros(config.N_CLASSES, dtype=torch.float64),
                          row_weights=w_row, scale=1 / len(y), max_iter=READOUT_MAX_ITER,
                          history_size=20, tolerance_grad=1e-9, tolerance_change=1e-12)
    stats.loss_sum = float(F.cross_entropy(logits, y, reduction="sum"))
    stats.correct = int((logits.argmax(1) == y).sum())
    if not math.isfinite(stats.loss_sum):
        raise TrainingError("The read-out fit did not converge (non-finite loss); the "
                            "features may be damaged.")
    stats.n, stats.seconds = len(y), time.time() - t0
    return stats


def readout_epoch(cfg: TrainConfig, model: torch.nn.Module, data: Prepared,
                  device: torch.device, dist: Dist, best: BestWeights,
                  opt: torch.optim.Optimizer, clock: Clock, say, stop: Callable[[], bool],
                  history: list[dict]) -> dict:
    """`fit`'s one 'epoch' when ``cfg.readout_l2`` is set: the read-out solved by
    `fit_readout`, validated and kept; its event is appended to ``history`` and returned."""
    say("fitting the read-out (L-BFGS)", 0, 1)
    train = fit_readout(model, data, cfg.readout_l2,
                        class_weights(cfg, data, torch.device("cpu")), stop)
    if train.cancelled:
        raise RunCancelledError("stopped while fitting the read-out; nothing was kept")
    val = validate(model, data, device, dist)
    improved = best.update(val["uar"], 1, model)
    event = epoch_event(1, 1, 1, train, val, opt, improved, clock)
    event["lr"] = 0.0  # no learning rate: the read-out is solved, not stepped
    history.append(event)
    return event


def epoch_event(epoch: int, epochs: int, step: int, train: EpochStats, val: dict,
                opt: torch.optim.Optimizer, improved: bool, clock: Clock) -> dict:
    per_epoch = clock.training_seconds() / epoch
    return {"type": "epoch", "epoch": epoch, "epochs": epochs, "step": step,
            "train_loss": train.loss, "train_accuracy": train.accuracy,
            "val_loss": val["loss"], "val_accuracy": val["accuracy"], "val_uar": val["uar"],
            "val_macro_f1": val["macro_f1"], "lr": opt.param_groups[0]["lr"],
            "epoch_time_s": train.seconds, "elapsed_s": clock.elapsed(),
            "eta_s": per_epoch * (epochs - epoch), "best": improved,
            "samples_per_s": train.n / max(train.seconds, 1e-9),
            **({"train_corpus_acc": train.corpus_accuracy}
               if train.corpus_accuracy is not None else {})}


def test_report(model: torch.nn.Module, data: Prepared) -> tuple[dict, pd.DataFrame]:
    probs = predict_proba(model, data.inputs["test"], torch.device("cpu"))
    y = data.labels["test"].numpy()
    clips = data.selection.part("test")
    return full_report(clips, y, probs), predictions_frame(clips, y, probs)


def build_card(cfg: TrainConfig, data: Prepared, report: dict, history: list[dict],
               best: BestWeights, stopped: str, device: torch.device, train_time: float,
               clock: Clock, dist: Dist | None = None) -> Card:
    d = describe(cfg.arch, **cfg.model_kwargs(), **data.features.model_dims())
    sel = data.selection
    card = Card(
        name=cfg.name or cfg.arch, arch=cfg.arch, input_space=d["input_space"],
        display_name=d["display_name"], family=d["family"], model_kwargs=d["kwargs"],
        params=d["total_params"], macs=d["macs"], features=data.features, training=cfg,
        normalisation={s: {k: v.tolist() for k, v in st.items()}
                       for s, st in data.normalisation.items()},
        data=data.data_card(cfg), split=sel.split.card(sel.manifest),
        run={"epochs_planned": cfg.resolved_epochs(), "epochs_run": len(history),
             "best_epoch": best.epoch, "stopped": stopped, "train_time_s": train_time,
             "total_time_s": clock.elapsed(), "device": device_description(device),
             "threads": torch.get_num_threads(),
             **({"swa": best.swa} if best.swa else {}),
             **({"adversary": adversary_summary(cfg, history)} if cfg.adversary else {})},
        metrics={"test": {k: report[k] for k in ("n", "accuracy", "uar", "macro_f1",
                                                 "macro_precision", "loss")},
                 "val_uar_best": best.uar},
        libraries=library_versions(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if dist is not None and dist.enabled:
        card.run.update(processes=dist.world, backend=dist.backend, nodes=cfg.nnodes,
                        global_batch=cfg.batch_size)
    return card


def adversary_summary(cfg: TrainConfig, history: list[dict]) -> dict:
    """The card's record of a corpus-adversarial run: the reversal's weight and how well the
    corpus classifier read the corpus from the embedding in the first and last epochs."""
    accs = [h["train_corpus_acc"] for h in history if h.get("train_corpus_acc") is not None]
    return {"weight": float(cfg.adversary),
            **({"corpus_accuracy_first_epoch": accs[0], "corpus_accuracy_last_epoch": accs[-1]}
               if accs else {})}


def estimate_throughput(arch: str, model_kwargs: dict | None = None, *, batch_size: int = 64,
                        device: str = "auto", steps: int = 2, precision: str = "auto") -> float:
    """Measured training samples/s of ``arch`` on ``device`` (random data, after a warm-up),
    in the autocast type ``precision`` gives (`autocast_dtype`).

    Used to show an estimated time per epoch before a run is launched.
    """
    dev = pick_device(device)
    dtype = autocast_dtype(precision, dev)
    model = create_model(arch, **(model_kwargs or {})).to(dev).train()
    x = model.example_input(batch=batch_size, device=dev)
    xs = x if isinstance(x, tuple) else (x,)
    y = torch.randint(0, config.N_CLASSES, (batch_size,), device=dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def one_step():
        opt.zero_grad()
        with autocast(dev, dtype):
            loss = F.cross_entropy(model(*xs).float(), y)
        loss.backward()
        opt.step()

    one_step()  # warm-up: allocator, kernels
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        one_step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t)


__all__ = ["FitResult", "TrainConfig", "fit", "estimate_throughput"]
