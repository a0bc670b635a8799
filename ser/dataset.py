"""The data path: corpus → split → part → features → normalised tensors.

Training, evaluation, shipping and the Results page all go through here, so a model is
always scored on exactly the clips its card names:

- `select` loads the corpus named by a `TrainConfig`, draws the same ``max_clips`` sample
  and rebuilds the same split (protocol, seed, fold) the run used;
- `prepare` turns a selection into normalised tensors for training (statistics fitted on
  the training part only, including its augmented copies);
- `recorded_part` gives one part (train/val/test) of a card's split with the card's own
  feature config and normalisation, ready to score.

Labels are encoded in `ser.config.LABELS` order everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from ser import config
from ser.card import Card
from ser.corpora import Corpus, corpus_available, load_corpus
from ser.features import LENGTH_KEY, SPACES, FeatureConfig, concat_variable
from ser.recipe import TrainConfig
from ser.speakers import norm_space, normalise_by_group, split_enrolment, stats_by_group
from ser.splits import Split, class_balance_weights, make_split, vote_weights
from ser.store import FeatureStore

LABEL_INDEX = {label: i for i, label in enumerate(config.LABELS)}
PARTS = ("train", "val", "test")
Progress = Callable[[str, int, int], None]


def encode_labels(emotions) -> np.ndarray:
    """Emotion names → integer labels (``ser.config.LABELS`` order)."""
    return pd.Series(emotions).map(LABEL_INDEX).to_numpy().astype(np.int64)


def spaces_for(input_space: str) -> tuple[str, ...]:
    """The feature spaces a model's input space reads, in the model's argument order."""
    try:
        return {"fs1": ("fs1",), "fs2": ("fs2",), "fs1+fs2": ("fs1", "fs2"),
                "voice": ("voice",)}[input_space]
    except KeyError:
        raise ValueError(f"unknown input space {input_space!r}") from None


class Inputs(tuple):
    """Model inputs in argument order (a tuple of tensors). For a variable-length model
    ``lengths`` holds each clip's own FS2 frame count: the FS2 tensor is padded with the
    (standardised) floor to the longest clip, and `predict_proba` scores every clip at its
    own length. ``lengths`` is None for fixed-length inputs."""

    lengths: np.ndarray | None

    def __new__(cls, tensors, lengths: np.ndarray | None = None):
        obj = super().__new__(cls, tensors)
        obj.lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        return obj


def input_lengths(inputs) -> np.ndarray | None:
    """The per-clip FS2 frame counts of variable-length ``inputs`` (None when fixed)."""
    return getattr(inputs, "lengths", None)


# ------------------------------------------------------------------------ normalisation

def fit_normalisation(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Per-dimension mean/std for FS1, per-mel-band mean/std for FS2 (training rows only).
    Variable-length FS2 (``fs2_len`` present) counts each clip's own frames only, not the
    padding that fills the array to the longest clip."""
    out = {}
    for space in ("fs1", "voice"):  # vectors: per-dimension statistics
        if space not in arrays:
            continue
        a = np.asarray(arrays[space], dtype=np.float64)
        std = a.std(0)
        floor = max(float(np.median(std)) * 1e-3, 1e-8)  # a constant feature, relative scale
        out[space] = {"mean": a.mean(0).astype(np.float32),
                      "std": np.maximum(std, floor).astype(np.float32)}
    if "fs2" in arrays and LENGTH_KEY in arrays:
        out["fs2"] = _masked_band_stats(np.asarray(arrays["fs2"], dtype=np.float32),
                                        np.asarray(arrays[LENGTH_KEY]))
    elif "fs2" in arrays:
        a = np.asarray(arrays["fs2"], dtype=np.float32)
        # Two passes over bands keep memory flat for the full corpus (GBs of spectrograms).
        mean = np.stack([a[:, b, :].mean(dtype=np.float64) for b in range(a.shape[1])])
        std = np.stack([a[:, b, :].std(dtype=np.float64) for b in range(a.shape[1])])
        # A 1 dB floor: a band that is (nearly) constant carries no information, and
        # dividing by its tiny spread would turn rounding noise into huge inputs.
        out["fs2"] = {"mean": mean.astype(np.float32), "std": np.maximum(std, 1.0)
                      .astype(np.float32)}
    return out


def _masked_band_stats(a: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Per-band mean/std over the valid frames of padded images (chunked: flat memory)."""
    n_bands = a.shape[1]
    total = np.zeros(n_bands)
    sq = np.zeros(n_bands)
    count = 0
    steps = np.arange(a.shape[-1])
    for i in range(0, len(a), 256):
        block = np.asarray(a[i:i + 256], dtype=np.float64)
        mask = (steps[None, :] < lengths[i:i + 256, None])[:, None, :]
        total += np.where(mask, block, 0.0).sum(axis=(0, 2))
        sq += np.where(mask, block ** 2, 0.0).sum(axis=(0, 2))
        count += int(lengths[i:i + 256].sum())
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(sq / max(count, 1) - mean ** 2, 0.0))
    return {"mean": mean.astype(np.float32), "std": np.maximum(std, 1.0).astype(np.float32)}


def normalise(space: str, x: np.ndarray, stats: dict[str, np.ndarray], *,
              inplace: bool = False) -> torch.Tensor:
    """Standardise a batch of features and add the channel axis the models expect.

    With ``inplace`` an array the caller owns (float32, writeable, not a view) is overwritten
    and shared with the returned tensor instead of copied: the training part of a run with
    augmented copies is GBs, and a second copy of it was the peak of a run's memory."""
    own = (inplace and isinstance(x, np.ndarray) and x.dtype == np.float32
           and x.flags.writeable and x.flags.c_contiguous and x.base is None)
    x = x if own else np.asarray(x, dtype=np.float32)
    if space in ("fs1", "voice"):
        mean, std = stats["mean"], stats["std"]
    else:
        mean, std = stats["mean"][:, None], stats["std"][:, None]
    if own:
        x -= mean
        x /= std
        t = torch.from_numpy(x)
    else:
        t = torch.from_numpy(np.ascontiguousarray((x - mean) / std, dtype=np.float32))
    return t.unsqueeze(1)  # (N, 1, D) or (N, 1, n_mels, T)


def model_inputs(arrays: dict[str, np.ndarray], input_space: str,
                 stats: dict[str, dict[str, np.ndarray]]) -> tuple[torch.Tensor, ...]:
    """Normalised tensors in the model's argument order (an `Inputs`, which carries the
    clips' frame counts when ``arrays`` holds variable-length FS2)."""
    return Inputs([normalise(s, arrays[s], stats[s]) for s in spaces_for(input_space)],
                  arrays.get(LENGTH_KEY) if "fs2" in spaces_for(input_space) else None)


def predict_proba(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                  device: torch.device | str = "cpu", batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` for stacked inputs, in eval mode, batched.
    Variable-length inputs (`Inputs` with ``lengths``) are scored in groups of equal
    length, each clip at its own length (no padding reaches the model)."""
    if hasattr(model, "eval"):  # an ONNX stand-in (`ser.export.OnnxLogits`) has no modes
        model.eval()
    lengths = input_lengths(inputs)
    if lengths is not None:
        out = np.zeros((len(lengths), config.N_CLASSES), np.float32)
        for t in np.unique(lengths):
            rows = np.flatnonzero(lengths == t)
            part = tuple(trim(x[torch.from_numpy(rows)], int(t)) for x in inputs)
            out[rows] = predict_proba(model, part, device, batch_size)
        return out
    out = []
    with torch.inference_mode():
        for i in range(0, len(inputs[0]), batch_size):
            xb = [x[i:i + batch_size].to(device, non_blocking=True) for x in inputs]
            out.append(torch.softmax(model(*xb).float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, config.N_CLASSES), np.float32)


def trim(x: torch.Tensor, frames: int) -> torch.Tensor:
    """A spectrogram batch ``(N, 1, n_mels, T)`` cut to ``frames``; other inputs as they are."""
    return x[..., :frames] if x.dim() == 4 else x


# ------------------------------------------------------------------------ selection

@dataclass
class Selection:
    """The clips a run used: corpus, the (sub-sampled) manifest and the split of it."""

    corpus: Corpus
    manifest: pd.DataFrame
    split: Split
    #: Speaker-normalised runs: per part ("val", "test"), the manifest rows of the
    #: enrolment clips that give each held-out speaker's statistics (not in the split).
    enrol: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identifies the manifest (its clip names), recorded in cards."""
        return hashlib.sha1("\n".join(sorted(self.manifest["clip"])).encode()).hexdigest()[:16]

    def rows(self, part: str) -> np.ndarray:
        if part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
        return self.split.parts()[part]

    def part(self, part: str) -> pd.DataFrame:
        """The manifest rows of one part, in split order, index reset."""
        return self.manifest.iloc[self.rows(part)].reset_index(drop=True)

    def enrolment(self, part: str) -> pd.DataFrame | None:
        """The enrolment clips of one part (None when the run is not speaker-normalised)."""
        if part not in self.enrol:
            return None
        return self.manifest.iloc[self.enrol[part]].reset_index(drop=True)


def subsample(manifest: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A stratified sample of ``n`` clips (all when ``n`` is 0 or too large)."""
    from sklearn.model_selection import train_test_split

    if not n or n >= len(manifest):
        return manifest
    keep, _ = train_test_split(np.arange(len(manifest)), train_size=n,
                               stratify=manifest["emotion"], random_state=seed)
    return manifest.iloc[np.sort(keep)].reset_index(drop=True)


def select(cfg: TrainConfig, *, corpus: Corpus | None = None) -> Selection:
    """Load ``cfg.data`` (unless ``corpus`` is given), draw its ``max_clips`` sample with
    ``cfg.seed`` and split it by ``cfg.split`` / ``split_seed`` / ``fold``."""
    corpus = corpus or load_corpus(cfg.data)
    manifest = subsample(corpus.manifest, cfg.max_clips, cfg.seed)
    split = make_split(manifest, cfg.split, seed=cfg.split_seed, fold=cfg.fold,
                       test_corpus=cfg.test_corpus or None)
    if getattr(cfg, "speaker_norm", "none") != "speaker":
        return Selection(corpus, manifest, split)
    return _with_enrolment(Selection(corpus, manifest, split), int(cfg.enrol), cfg.split_seed)


def _with_enrolment(sel: Selection, k: int, seed: int) -> Selection:
    """Move ``k`` enrolment clips per val/test speaker out of the split (they give the
    speaker's statistics and are never scored); a speaker with a single clip cannot be
    enrolled and is left out of scoring."""
    parts, enrol = dict(sel.split.parts()), {}
    for part in ("val", "test"):
        rows = np.asarray(parts[part], dtype=int)
        picked, scored = split_enrolment(sel.manifest.iloc[rows], k, seed)
        enrol[part], parts[part] = rows[picked], rows[scored]
    note = (f"; speaker-normalised: {k} enrolment clips per validation/test speaker give "
            "its statistics and are not scored")
    split = replace(sel.split, val=parts["val"], test=parts["test"],
                    description=sel.split.description + note)
    return Selection(sel.corpus, sel.manifest, split, enrol)


# ------------------------------------------------------------------------ training data

@dataclass
class Prepared:
    """Everything the loop needs: standardised tensors per part, labels, provenance."""

    selection: Selection
    features: FeatureConfig
    spaces: tuple[str, ...]
    inputs: dict[str, tuple[torch.Tensor, ...]]  # part → tensors in the model's input order
    labels: dict[str, torch.Tensor]
    normalisation: dict[str, dict[str, np.ndarray]]
    n_augmented: int = 0
    #: Per training row, the weight of its draw (``balance="corpus"``, ``vote_weight``);
    #: None = uniform.
    train_weights: np.ndarray | None = None
    #: Per training row, the teachers' averaged probabilities (set by
    #: `ser.distill.attach_teachers`); None = no teacher.
    soft: np.ndarray | None = None
    #: The teachers behind ``soft``, by name (expanded: ``ensemble`` → its members).
    teachers: list[str] = field(default_factory=list)
    #: Per training row, its speaker (``batches="speaker"``: one speaker per batch); None =
    #: batches mix speakers.
    train_groups: np.ndarray | None = None
    #: The weights the network starts from (``cfg.init``, set by
    #: `ser.warmstart.attach_init`); None = random.
    init_state: dict | None = None
    #: Where ``init_state`` came from: the starting model's name and weights digest.
    init_from: dict = field(default_factory=dict)

    def data_card(self, cfg: TrainConfig) -> dict:
        c = self.selection.corpus
        return {"corpus": c.name, "synthetic": c.is_demo,
                "clips": len(self.selection.manifest),
                "fingerprint": self.selection.fingerprint,
                "augmented_copies": self.n_augmented,
                "augmentation": cfg.describe_augmentation(),
                **({"enrolment": {"per_speaker": int(cfg.enrol),
                                  **{p: int(len(r)) for p, r in self.selection.enrol.items()}}}
                   if self.selection.enrol else {}),
                **({"teachers": list(self.teachers)} if self.teachers else {}),
                **({"init": dict(self.init_from)} if self.init_from else {})}


def prepare(cfg: TrainConfig, input_space: str, *, store: FeatureStore | None = None,
            progress: Progress | None = None) -> Prepared:
    """Select the run's clips, extract (cached) features of every clip and of the augmented
    training copies, fit the normalisation on the training part and apply it."""
    cfg.check()
    check_length(cfg)
    sel = select(cfg)
    feats_cfg = cfg.feature_config()
    store = store or FeatureStore(cfg=feats_cfg, length=cfg.length)
    spaces = spaces_for(input_space)
    variable = cfg.length == "variable" and "fs2" in spaces
    keys = spaces + ((LENGTH_KEY,) if variable else ())
    aug = cfg.augment()
    n_copies = int(cfg.copies) if aug.enabled else 0
    train_paths = list(sel.manifest["path"].iloc[sel.split.train])
    feats, aug_parts = training_features(cfg, sel, store=store, progress=progress,
                                         stacked=False)
    raw = {part: {s: np.asarray(feats[s])[idx] for s in keys}
           for part, idx in sel.split.parts().items()}
    if cfg.speaker_norm == "speaker":
        aug_parts = _speaker_normalise(sel, raw, feats, aug_parts, spaces)
    has_copies = bool(aug_parts)
    if has_copies:
        # One concatenation of the originals and every copy (the copies come memory-mapped
        # from the cache): stacking the copies first would hold them twice at the peak.
        raw["train"] = concat_variable([raw["train"], *aug_parts], spaces,
                                       floor=-feats_cfg.top_db)
        del aug_parts
    # Statistics come from exactly what the model trains on (original + augmented training
    # clips): bands that are empty in 16 kHz originals but filled by the noise copy would
    # otherwise get a near-zero spread and blow up. (A warm start then swaps in its model's
    # own statistics: `ser.warmstart.attach_init`.)
    norm = fit_normalisation(raw["train"])
    inputs, labels = {}, {}
    for part, idx in sel.split.parts().items():
        # raw holds this run's own copies (indexed out of the cache, or concatenated):
        # normalised where they are, not copied once more.
        inputs[part] = Inputs([normalise(s, raw[part][s], norm[s], inplace=True)
                               for s in spaces], raw[part].get(LENGTH_KEY))
        y = encode_labels(sel.manifest["emotion"].iloc[idx])
        if part == "train" and has_copies:
            y = np.tile(y, 1 + n_copies)
        labels[part] = torch.from_numpy(y)
    weights = draw_weights(cfg, sel)
    if weights is not None:
        weights = np.tile(weights, 1 + n_copies)
    groups = None
    if cfg.batches == "speaker":
        groups = np.tile(sel.manifest["speaker"].astype(str).to_numpy()[sel.split.train],
                         1 + n_copies)
    return Prepared(sel, feats_cfg, spaces, inputs, labels, norm, len(train_paths) * n_copies,
                    weights, train_groups=groups)


def draw_weights(cfg: TrainConfig, sel: Selection) -> np.ndarray | None:
    """How often each training clip (in split order) is drawn relative to the others:
    corpus balance (``balance="corpus"``) times the raters' votes (``vote_weight``); None
    = every clip alike. ``ValueError`` when ``vote_weight`` is on and no training clip has
    a vote."""
    weights = None
    if cfg.balance == "corpus":
        weights = class_balance_weights(sel.manifest, sel.split.train)
    if float(cfg.vote_weight) != 1:
        heard = vote_weights(sel.manifest, sel.split.train, cfg.vote_weight)
        if heard is None:
            raise ValueError(f"vote_weight {cfg.vote_weight:g} needs the crowd raters' votes "
                             "(CREMA-D's summaryTable.csv beside its audio), and no training "
                             f"clip of {sel.corpus.name} has one.")
        weights = heard if weights is None else weights * heard
    return weights


def check_votes(cfg: TrainConfig) -> None:
    """Refuse a ``vote_weight`` run whose training clips have no raters' votes."""
    if float(cfg.vote_weight) != 1:
        draw_weights(cfg, select(cfg))


def training_features(cfg: TrainConfig, sel: Selection, *, store: FeatureStore | None = None,
                      progress: Progress | None = None, stacked: bool = True
                      ) -> tuple[dict, dict | list | None]:
    """``(features of every clip, features of the augmented training copies or None)``,
    both spaces, extracted once and cached: the copies are stacked copy after copy, in the
    order of the training part (``stacked=False``: a list of one dict per copy, each in
    that order, memory-mapped when cached)."""
    store = store or FeatureStore(cfg=cfg.feature_config(), length=cfg.length)
    aug = cfg.augment()
    n_copies = int(cfg.copies) if aug.enabled else 0
    train_paths = list(sel.manifest["path"].iloc[sel.split.train])

    def stage(done: int, total: int) -> None:
        if progress:
            progress("extracting features", done, total)

    # Both seed spaces always: one cache entry then serves every CNN. The voice space (a
    # pretrained encoder's statistics) is extracted only for the models that read it.
    from ser.models import model_input_space

    spaces = ("voice",) if model_input_space(cfg.arch) == "voice" else SPACES
    return store.with_copies(list(sel.manifest["path"]), train_paths if aug.enabled else [],
                             augment=aug, copies=max(n_copies, 1), spaces=spaces,
                             progress=stage, stacked=stacked)


def check_length(cfg: TrainConfig) -> None:
    """Refuse a variable-length run the architecture or options cannot take."""
    if cfg.length != "variable":
        return
    from ser.models import model_class

    if not getattr(model_class(cfg.arch), "variable_length", False):
        from ser.models import list_models

        able = [n for n in list_models() if model_class(n).variable_length]
        raise ValueError(f"{cfg.arch} takes a fixed 216-frame spectrogram (or no "
                         "spectrogram): variable-length input needs an architecture with "
                         f"global pooling ({', '.join(able)}).")
    if cfg.speaker_norm != "none" or cfg.feature_config().fs2_norm != "none":
        raise ValueError("Variable-length input works with the seeds' log-mel images: "
                         "switch off speaker and log-mel normalisation.")
    if cfg.distributed:
        raise ValueError("Variable-length input is not available for distributed training.")


def _speaker_normalise(sel: Selection, raw: dict, feats: dict, aug_parts: list | None,
                       spaces: tuple[str, ...]) -> list | None:
    """Normalise every FS2 image (or voice vector) in ``raw`` (in place) and of the
    augmented copies (one dict per copy) by its speaker's statistics: training speakers
    from their own training clips (each copy set from its own copies), held-out speakers
    from their enrolment clips."""
    s = norm_space(spaces)
    spk = sel.manifest["speaker"].astype(str).to_numpy()
    train_spk = spk[sel.split.train]
    raw["train"][s] = normalise_by_group(
        raw["train"][s], train_spk, stats_by_group(raw["train"][s], train_spk, s))
    for part in ("val", "test"):
        rows, enrol = sel.split.parts()[part], sel.enrol[part]
        if len(rows):
            stats = stats_by_group(np.asarray(feats[s])[enrol], spk[enrol], s)
            raw[part][s] = normalise_by_group(raw[part][s], spk[rows], stats)
    if not aug_parts:
        return aug_parts
    out = []
    for part in aug_parts:
        block = np.asarray(part[s])
        out.append({**part, s: normalise_by_group(block, train_spk,
                                                  stats_by_group(block, train_spk, s))})
    return out


# ------------------------------------------------------------------------ scoring a card

@dataclass
class Part:
    """One part of a card's split, featurised and normalised with the card's settings."""

    selection: Selection
    clips: pd.DataFrame
    inputs: tuple[torch.Tensor, ...]
    labels: np.ndarray
    name: str


def card_config(card: Card, *, data: str | None = None, protocol: str | None = None
                ) -> TrainConfig:
    """The card's recipe, pointed at ``data`` and (rarely) another split ``protocol``."""
    cfg = replace(card.training)
    if data is not None:
        cfg.data = data
    elif cfg.data and not corpus_available(cfg.data):
        # Trained on another machine: score on the corpus this one is set up with; the
        # report's fingerprint check says whether it holds the same clips.
        cfg.data = None
    if protocol:
        cfg.split = protocol
    return cfg


def recorded_part(card: Card, part: str = "test", *, data: str | None = None,
                  protocol: str | None = None, progress: Progress | None = None) -> Part:
    """The clips of ``part`` of the split the card records (protocol, seed, fold and
    ``max_clips`` sample included), featurised with the card's feature config and
    normalised with its statistics. ``data`` points at the corpus when it has moved."""
    sel = select(card_config(card, data=data, protocol=protocol))
    clips = sel.part(part)
    return Part(sel, clips, featurise(card, clips, enrol=sel.enrolment(part),
                                      progress=progress),
                encode_labels(clips["emotion"]), part)


def featurise(card: Card, clips: pd.DataFrame, *, enrol: pd.DataFrame | None = None,
              progress: Progress | None = None) -> tuple[torch.Tensor, ...]:
    """Model inputs for ``clips`` (a manifest) with the card's feature config (cached) and
    normalisation statistics, in the model's argument order.

    A speaker-normalised card also needs ``enrol``: clips (with a ``speaker`` column) of
    every speaker in ``clips``, whose statistics standardise that speaker's images.
    """
    def stage(done: int, total: int) -> None:
        if progress:
            progress("extracting features", done, total)

    store = FeatureStore(cfg=card.features, length=card.training.length)
    spaces = spaces_for(card.input_space)
    feats = store.features(list(clips["path"]), spaces=spaces, progress=stage)
    if card.speaker_normalised:
        if enrol is None or not len(enrol):
            raise ValueError(f"{card.name or 'this model'} is speaker-normalised: it needs "
                             "enrolment clips of each speaker it scores.")
        s = norm_space(spaces)
        ref = store.features(list(enrol["path"]), spaces=(s,))
        stats = stats_by_group(ref[s], enrol["speaker"].astype(str).to_numpy(), s)
        feats = {**feats, s: normalise_by_group(
            feats[s], clips["speaker"].astype(str).to_numpy(), stats)}
    return model_inputs(feats, card.input_space, card.normalisation_arrays())
