"""The training loop: data → model → best checkpoint → test report → bundle.

`fit` is the one way a model is trained: the CLI, the Train page (through `ser.runs`, which
runs the CLI in its own process) and the tests all call it. Defaults follow the seeds: Adam,
lr 1e-3, cross-entropy, batch 64, 30 epochs for 1D and 20 for 2D models, one
noise-augmented copy of every training clip. Early stopping watches validation UAR and the
best weights are restored before the test set is touched.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ser import config
from ser.augment import AugmentConfig, shift_augment, spec_augment

EventFn = Callable[[dict], None]


#: Most augmented copies of each training clip a run may ask for (each one adds a full
#: training set of features in memory).
MAX_COPIES = 8


@dataclass
class TrainConfig:
    """Plain data describing one training run; stored as the run's config.json."""

    arch: str = "lenet2d"
    activation: str | None = None  # None → the architecture's default
    width: float | None = None
    dropout: float | None = None
    data: str | None = None  # corpus folder; None → SER_DATA_DIR, data/, or the demo corpus
    split: str = "speaker"  # speaker | random | kfold
    split_seed: int = 0
    fold: int = 0
    epochs: int | None = None  # None → 30 for 1D models, 20 otherwise (the notebook seed)
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "none"  # none | cosine | plateau
    label_smoothing: float = 0.0
    class_weights: bool = False
    spec_augment: bool = False
    mixup: float = 0.0  # Beta(α, α) mixing; 0 disables
    freq_shift: int = 0  # random shift of each spectrogram by up to this many mel bands
    time_shift: float = 0.0  # random rotation in time by up to this fraction of the frames
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    patience: int = 8  # epochs without a better validation UAR before stopping; 0 disables
    noise: bool = True  # the seed's noise-augmented copy of each training clip
    pitch: bool = False
    stretch: bool = False
    copies: int = 1  # augmented copies of each training clip when a waveform transform is on
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 0  # CPU threads; 0 → all cores
    log_every: int = 10  # steps between step lines in metrics.jsonl
    max_clips: int = 0  # use only this many clips (stratified sample) for quick trials; 0 = all
    half_bundle: bool = False  # store bundle weights as float16
    name: str = ""

    def model_kwargs(self) -> dict:
        return {k: v for k, v in (("activation", self.activation), ("width", self.width),
                                  ("dropout", self.dropout)) if v is not None}

    def augment(self) -> AugmentConfig:
        return AugmentConfig(noise=self.noise, pitch=self.pitch, stretch=self.stretch,
                             seed=self.seed)

    def describe_augmentation(self) -> str:
        """The waveform copies in words, e.g. ``"white noise ×0.01, pitch ±2 st (×3)"``."""
        aug = self.augment()
        text = aug.describe()
        return f"{text} (×{self.copies})" if aug.enabled and self.copies > 1 else text

    def resolved_epochs(self) -> int:
        from ser.models import model_input_space

        if self.epochs:
            return int(self.epochs)
        return 30 if model_input_space(self.arch) == "fs1" else 20

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"Unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def pick_device(preference: str = "auto") -> torch.device:
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
    from ser.parallel import cpu_count

    dev = dev or pick_device()
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        return f"CUDA: {p.name} ({p.total_memory / 2**30:.1f} GB)"
    if dev.type == "mps":
        return "MPS (Apple GPU)"
    return f"CPU ({cpu_count()} cores)"


# ------------------------------------------------------------------------------- data

@dataclass
class Prepared:
    """Everything the loop needs: standardised tensors per part, labels, provenance."""

    inputs: dict[str, tuple[torch.Tensor, ...]]  # part → tensors in the model's input order
    labels: dict[str, torch.Tensor]
    manifest: pd.DataFrame
    split: object
    normalisation: dict[str, dict[str, np.ndarray]]
    corpus_name: str
    corpus_root: str
    is_demo: bool
    fingerprint: str
    n_augmented: int
    spaces: tuple[str, ...] = field(default_factory=tuple)


def spaces_for(input_space: str) -> tuple[str, ...]:
    return {"fs1": ("fs1",), "fs2": ("fs2",), "fs1+fs2": ("fs1", "fs2")}[input_space]


def fit_normalisation(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Per-dimension mean/std for FS1, per-mel-band mean/std for FS2 (training rows only)."""
    out = {}
    if "fs1" in arrays:
        a = np.asarray(arrays["fs1"], dtype=np.float64)
        std = a.std(0)
        floor = max(float(np.median(std)) * 1e-3, 1e-8)  # same reasoning, relative scale
        out["fs1"] = {"mean": a.mean(0).astype(np.float32),
                      "std": np.maximum(std, floor).astype(np.float32)}
    if "fs2" in arrays:
        a = np.asarray(arrays["fs2"], dtype=np.float32)
        # Two passes over bands keep memory flat for the full corpus (GBs of spectrograms).
        mean = np.stack([a[:, b, :].mean(dtype=np.float64) for b in range(a.shape[1])])
        std = np.stack([a[:, b, :].std(dtype=np.float64) for b in range(a.shape[1])])
        # A 1 dB floor: a band that is (nearly) constant carries no information, and
        # dividing by its tiny spread would turn rounding noise into huge inputs.
        out["fs2"] = {"mean": mean.astype(np.float32), "std": np.maximum(std, 1.0)
                      .astype(np.float32)}
    return out


def normalise(space: str, x: np.ndarray, stats: dict[str, np.ndarray]) -> torch.Tensor:
    """Standardise a batch of features and add the channel axis the models expect."""
    x = np.asarray(x, dtype=np.float32)
    if space == "fs1":
        t = torch.from_numpy((x - stats["mean"]) / stats["std"])
        return t.unsqueeze(1)  # (N, 1, 169)
    mean, std = stats["mean"][:, None], stats["std"][:, None]
    t = torch.from_numpy(np.ascontiguousarray((x - mean) / std, dtype=np.float32))
    return t.unsqueeze(1)  # (N, 1, 128, T)


def _subsample(manifest: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    from sklearn.model_selection import train_test_split

    if not n or n >= len(manifest):
        return manifest
    keep, _ = train_test_split(np.arange(len(manifest)), train_size=n,
                               stratify=manifest["emotion"], random_state=seed)
    return manifest.iloc[np.sort(keep)].reset_index(drop=True)


def prepare(cfg: TrainConfig, input_space: str, progress: Callable[[str, int, int], None]
            | None = None) -> Prepared:
    """Load the corpus, split it, extract (cached) features and standardise them."""
    from ser import features
    from ser.corpora import load_corpus
    from ser.splits import make_split

    corpus = load_corpus(cfg.data)
    manifest = _subsample(corpus.manifest, cfg.max_clips, cfg.seed)
    split = make_split(manifest, cfg.split, seed=cfg.split_seed, fold=cfg.fold)
    spaces = spaces_for(input_space)

    def stage(name):
        return (lambda d, t: progress(name, d, t)) if progress else None

    aug = cfg.augment()
    if not 1 <= int(cfg.copies) <= MAX_COPIES:
        raise ValueError(f"copies must be 1–{MAX_COPIES}, not {cfg.copies}.")
    n_copies = int(cfg.copies) if aug.enabled else 0
    train_paths = list(manifest["path"].iloc[split.train])
    # Always both spaces: one cache entry then serves every architecture.
    feats, aug_feats = features.extract_with_augmented(
        list(manifest["path"]), train_paths if aug.enabled else [], spaces=features.SPACES,
        augment=aug, copies=max(n_copies, 1), progress=stage("extracting features"))
    y_all = manifest["emotion"].map({lab: i for i, lab in enumerate(config.LABELS)}).to_numpy()
    raw = {}
    for part, idx in split.parts().items():
        raw[part] = {s: np.asarray(feats[s])[idx] for s in spaces}
    if aug_feats is not None:
        raw["train"] = {s: np.concatenate([raw["train"][s], np.asarray(aug_feats[s])])
                        for s in spaces}
    # Statistics come from exactly what the model trains on (original + augmented training
    # clips): bands that are empty in 16 kHz originals but filled by the noise copy would
    # otherwise get a near-zero spread and blow up.
    norm = fit_normalisation(raw["train"])
    inputs, labels = {}, {}
    for part, idx in split.parts().items():
        inputs[part] = tuple(normalise(s, raw[part][s], norm[s]) for s in spaces)
        y = y_all[idx]
        if part == "train" and aug_feats is not None:
            y = np.tile(y, 1 + n_copies)
        labels[part] = torch.from_numpy(y.astype(np.int64))
    del raw
    fp = hashlib.sha1("\n".join(sorted(manifest["clip"])).encode()).hexdigest()[:16]
    return Prepared(inputs, labels, manifest, split, norm, corpus.name, str(corpus.root),
                    corpus.is_demo, fp, len(train_paths) * n_copies,
                    spaces)


# ------------------------------------------------------------------------------- loop

def predict_proba(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                  device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` for stacked inputs, in eval mode, batched."""
    model.eval()
    out = []
    n = len(inputs[0])
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            xb = [x[i:i + batch_size].to(device, non_blocking=True) for x in inputs]
            out.append(torch.softmax(model(*xb).float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, config.N_CLASSES), np.float32)


@dataclass
class FitResult:
    model: torch.nn.Module
    card: dict
    report: dict
    predictions: pd.DataFrame
    history: list[dict]
    stopped: str  # "finished" | "early_stopped" | "cancelled"


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(cfg: TrainConfig, *, on_event: EventFn | None = None,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[str, int, int], None] | None = None) -> FitResult:
    """Train ``cfg.arch`` and evaluate its best checkpoint on the test part.

    ``on_event`` receives step events (``type="step"``: step, epoch, loss, samples_per_s, lr)
    and epoch events (``type="epoch"``: train/val loss, accuracy, UAR, lr, elapsed, eta).
    ``should_stop`` is polled every step; when it returns True the loop stops, the best
    weights so far are kept and ``stopped == "cancelled"``.
    """
    from ser.evaluation import full_report, predictions_frame
    from ser.models import create_model, describe, model_input_space

    emit = on_event or (lambda e: None)
    stop = should_stop or (lambda: False)
    input_space = model_input_space(cfg.arch)  # fails early on an unknown architecture
    device = pick_device(cfg.device)
    if device.type == "cpu":
        from ser.parallel import cpu_count

        torch.set_num_threads(cfg.threads or cpu_count())
    t_start = time.time()
    data = prepare(cfg, input_space, progress)
    set_seed(cfg.seed)
    model = create_model(cfg.arch, **cfg.model_kwargs()).to(device)
    epochs = cfg.resolved_epochs()
    x_train, y_train = data.inputs["train"], data.labels["train"]
    n_train = len(y_train)
    if n_train == 0 or len(data.labels["val"]) == 0 or len(data.labels["test"]) == 0:
        raise ValueError("The split left an empty train, validation or test part; use a "
                         "larger corpus.")
    on_gpu = device.type != "cpu"
    if on_gpu:  # the whole feature tensor fits in GPU memory: no host→device copy per step
        x_train = tuple(x.to(device) for x in x_train)
        y_train = y_train.to(device)
    weight = None
    if cfg.class_weights:
        counts = torch.bincount(data.labels["train"], minlength=config.N_CLASSES).float()
        weight = (counts.sum() / (config.N_CLASSES * counts.clamp(min=1))).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    sched = None
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=epochs * steps_per_epoch, pct_start=0.15,
            anneal_strategy="cos")
    elif cfg.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                           patience=2)
    elif cfg.schedule != "none":
        raise ValueError(f"Unknown schedule {cfg.schedule!r}: use none, cosine or plateau.")
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    gen = torch.Generator().manual_seed(cfg.seed)
    mix_rng = np.random.default_rng(cfg.seed)
    fs2_pos = data.spaces.index("fs2") if "fs2" in data.spaces else None

    best_uar, best_state, best_epoch, bad_epochs = -1.0, None, 0, 0
    history: list[dict] = []
    step, stopped = 0, "finished"
    t_train = time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        t_epoch = time.time()
        perm = torch.randperm(n_train, generator=gen)
        run_loss, run_correct, run_n = 0.0, 0, 0
        window_t, window_n = time.time(), 0
        for b in range(steps_per_epoch):
            if stop():
                stopped = "cancelled"
                break
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            if on_gpu:
                idx = idx.to(device)
            xb = [x[idx] for x in x_train]
            yb = y_train[idx]
            if not on_gpu:
                xb = [x.to(device) for x in xb]
                yb = yb.to(device)
            if (cfg.freq_shift or cfg.time_shift) and fs2_pos is not None:
                xb[fs2_pos] = shift_augment(xb[fs2_pos], freq=cfg.freq_shift,
                                            time=cfg.time_shift,
                                            generator=gen if not on_gpu else None)
            if cfg.spec_augment and fs2_pos is not None:
                xb[fs2_pos] = spec_augment(xb[fs2_pos], generator=gen if not on_gpu else None)
            lam, yb2 = 1.0, None
            if cfg.mixup > 0:
                lam = float(mix_rng.beta(cfg.mixup, cfg.mixup))
                order = torch.randperm(len(yb), generator=gen).to(device)
                xb = [lam * x + (1 - lam) * x[order] for x in xb]
                yb2 = yb[order]
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = model(*xb)
                loss = F.cross_entropy(logits.float(), yb, weight=weight,
                                       label_smoothing=cfg.label_smoothing)
                if yb2 is not None:
                    loss = lam * loss + (1 - lam) * F.cross_entropy(
                        logits.float(), yb2, weight=weight, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if sched is not None and cfg.schedule == "cosine":
                sched.step()
            step += 1
            bs = len(yb)
            run_loss += float(loss.detach()) * bs
            run_correct += int((logits.argmax(1) == yb).sum())
            run_n += bs
            window_n += bs
            if step % cfg.log_every == 0:
                now = time.time()
                emit({"type": "step", "step": step, "epoch": epoch,
                      "epoch_progress": (b + 1) / steps_per_epoch, "loss": float(loss.detach()),
                      "samples_per_s": window_n / max(now - window_t, 1e-9),
                      "lr": opt.param_groups[0]["lr"], "elapsed_s": now - t_start})
                window_t, window_n = now, 0
        if stopped == "cancelled" and run_n == 0:
            break
        val_probs = predict_proba(model, data.inputs["val"], device)
        y_val = data.labels["val"].numpy()
        from ser.evaluation import classification_metrics

        vm = classification_metrics(y_val, val_probs)
        elapsed = time.time() - t_train
        per_epoch = elapsed / epoch
        improved = vm["uar"] > best_uar
        if improved:
            best_uar, best_epoch, bad_epochs = vm["uar"], epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                        model.state_dict().items()})
        else:
            bad_epochs += 1
        event = {"type": "epoch", "epoch": epoch, "epochs": epochs, "step": step,
                 "train_loss": run_loss / max(run_n, 1), "train_accuracy": run_correct /
                 max(run_n, 1), "val_loss": vm["loss"], "val_accuracy": vm["accuracy"],
                 "val_uar": vm["uar"], "val_macro_f1": vm["macro_f1"],
                 "lr": opt.param_groups[0]["lr"], "epoch_time_s": time.time() - t_epoch,
                 "elapsed_s": time.time() - t_start, "eta_s": per_epoch * (epochs - epoch),
                 "best": improved, "samples_per_s": run_n / max(time.time() - t_epoch, 1e-9)}
        history.append(event)
        emit(event)
        if sched is not None and cfg.schedule == "plateau":
            sched.step(vm["uar"])
        if stopped == "cancelled":
            break
        if cfg.patience and bad_epochs >= cfg.patience:
            stopped = "early_stopped"
            break
    train_time = time.time() - t_train
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to("cpu")
    test_probs = predict_proba(model, data.inputs["test"], torch.device("cpu"))
    y_test = data.labels["test"].numpy()
    test_manifest = data.manifest.iloc[data.split.test].reset_index(drop=True)
    report = full_report(test_manifest, y_test, test_probs)
    preds = predictions_frame(test_manifest, y_test, test_probs)
    from ser.bundle import library_versions

    d = describe(cfg.arch, **cfg.model_kwargs())
    card = {
        "name": cfg.name or cfg.arch,
        "arch": cfg.arch,
        "display_name": d["display_name"],
        "family": d["family"],
        "model_kwargs": d["kwargs"],
        "params": d["total_params"],
        "macs": d["macs"],
        "input_space": input_space,
        "feature_config": _feature_config_dict(),
        "normalisation": {s: {k: v.tolist() for k, v in st.items()}
                          for s, st in data.normalisation.items()},
        "data": {"corpus": data.corpus_name, "synthetic": data.is_demo,
                 "clips": len(data.manifest), "fingerprint": data.fingerprint,
                 "augmented_copies": data.n_augmented,
                 "augmentation": cfg.describe_augmentation()},
        "split": data.split.card(data.manifest),
        "training": {**cfg.as_dict(), "epochs_planned": epochs, "epochs_run": len(history),
                     "best_epoch": best_epoch, "stopped": stopped, "train_time_s": train_time,
                     "total_time_s": time.time() - t_start, "device": device_description(
                         device), "threads": torch.get_num_threads()},
        "metrics": {"test": {k: report[k] for k in ("n", "accuracy", "uar", "macro_f1",
                                                    "macro_precision", "loss")},
                    "val_uar_best": best_uar},
        "libraries": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report["protocol"] = card["split"]
    report["data"] = card["data"]
    return FitResult(model, card, report, preds, history, stopped)


def _feature_config_dict() -> dict:
    from ser.features import DEFAULT

    return DEFAULT.as_dict()


__all__ = ["FitResult", "TrainConfig", "device_description", "fit", "pick_device",
           "predict_proba", "prepare"]


def estimate_throughput(arch: str, model_kwargs: dict | None = None, *, batch_size: int = 64,
                        device: str = "auto", steps: int = 2) -> float:
    """Measured training samples/s of ``arch`` on ``device`` (random data, after a warm-up).

    Used to show an estimated time per epoch before a run is launched.
    """
    from ser.models import create_model, model_input_space

    dev = pick_device(device)
    model = create_model(arch, **(model_kwargs or {})).to(dev).train()
    shapes = {"fs1": config.FS1_SHAPE, "fs2": config.FS2_SHAPE}
    xs = [torch.randn(batch_size, *shapes[s], device=dev)
          for s in spaces_for(model_input_space(arch))]
    y = torch.randint(0, config.N_CLASSES, (batch_size,), device=dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(*xs), y).backward()
        opt.step()

    step()  # warm-up: allocator, kernels
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t)
