"""Knowledge distillation: soft targets from trained teachers.

A run with ``teachers`` (`ser.recipe.TrainConfig.teachers`) learns from two targets at
once: the labels (cross-entropy, weight ``1 − distill``) and the teachers' averaged
probabilities for the same training row (KL divergence between the two distributions
softened by ``distill_temperature`` T, weight ``distill``, multiplied by T² so its gradients
keep their scale when T changes).

The teachers score exactly the feature rows the student trains on (every training clip and
its augmented copies), each teacher with its own normalisation statistics and calibrated
temperature, before the per-batch augmentation (SpecAugment, mixup, random floor): the
student learns to give, for a perturbed input, the teachers' answer on the clean one.

Honesty: a teacher that trained on a clip the student validates or tests on would carry
that clip's label into the student. `load_teachers` refuses such a teacher, and any teacher
whose training clips cannot be rebuilt to check it. Clips are compared by their pooled names
(``<corpus>/<clip>``), so a teacher of one corpus is checked against a pooled student too.

Scope (``distill_scope``): with ``all`` the teachers answer for every training row; with
``heard`` each teacher answers only for rows of the corpora it trained on, and a row no teacher
heard gets its own label as target (one-hot) instead — a teacher that never heard a corpus
mostly passes on its own confusion there (the CREMA-D models call most voices of other corpora
"angry").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ser import config

if TYPE_CHECKING:
    from ser.bundle import Bundle

#: Training rows a teacher scores at a time (bounds the memory of the standardised copy).
CHUNK = 2048

Progress = Callable[[str, int, int], None]


def check_teachers(cfg):
    """``cfg``, after loading its teachers and checking them against the split it will
    train on (what `attach_teachers` does in training), so a bad teacher is refused before a run
    is queued."""
    if cfg.teachers:
        from ser.dataset import select

        load_teachers(cfg, select(cfg), cfg.feature_config())
    return cfg


def load_teachers(cfg, selection, features) -> list[Bundle]:
    """The teachers named by ``cfg.teachers``, each checked against the student's run:
    same feature config, clips scored one at a time (no voice statistics), fixed length, and
    no clip of the student's validation or test part among its own training clips."""
    return [b for b, _ in _checked_teachers(cfg, selection, features)]


def _checked_teachers(cfg, selection, features) -> list[tuple[Bundle, set[str]]]:
    """`load_teachers` with each teacher's training clips (pooled names)."""
    from ser.bundle import load_bundle
    from ser.names import bundle_files

    bundles, seen = [], set()
    for name in cfg.teacher_names():
        paths = bundle_files(name)
        if not paths:
            raise ValueError(f"Teacher {name!r} names no model: give a shipped model's name, "
                             "a bundle (.pt) or model folder, or 'ensemble'.")
        for p in paths:
            key = str(p.resolve())
            if key not in seen:
                seen.add(key)
                bundles.append(load_bundle(p))
    held = pooled_clips(selection, ("val", "test"))
    return [(b, check_teacher(b, features, selection, held)) for b in bundles]


def check_teacher(bundle: Bundle, features, selection, held: set[str]) -> set[str]:
    """Raise ``ValueError`` when ``bundle`` cannot teach this run (see `load_teachers`);
    otherwise return the clips it trained on (pooled names)."""
    card, name = bundle.card, bundle.name
    if card.features.extraction() != features.extraction():
        raise ValueError(f"Teacher {name} was trained on other features than this run "
                         "(feature settings differ); teachers must share the student's "
                         "(the log-mel normalisation may differ: each teacher scores the "
                         "clips with its own).")
    if card.speaker_normalised:
        raise ValueError(f"Teacher {name} is speaker-normalised: it needs each speaker's "
                         "statistics and cannot score training clips one by one.")
    if card.training.length != "fixed":
        raise ValueError(f"Teacher {name} reads variable-length spectrograms; teachers "
                         "must take the fixed 216-frame input.")
    taught = teacher_training_clips(bundle, selection)
    leak = taught & held
    if leak:
        raise ValueError(f"Teacher {name} trained on {len(leak)} clip(s) of this run's "
                         "validation or test part (another split); its soft targets would "
                         "leak their labels. Use teachers trained on the same split.")
    return taught


class TrainingClipsUnknownError(ValueError):
    """A model's training clips cannot be rebuilt here: its corpus is neither the run's
    (same manifest) nor on this machine."""


def teacher_training_clips(bundle: Bundle, selection) -> set[str]:
    """The pooled names (`pooled_clips`) of the clips ``bundle`` trained on: its split is
    rebuilt on the student's corpus when both cards name the same clips (manifest
    fingerprint), else on the teacher's own corpus, which must then be on this machine."""
    from ser.corpora import corpus_available
    from ser.dataset import card_config, select

    card = bundle.card
    if card.data.get("fingerprint") == selection.fingerprint:
        sel = select(card_config(card), corpus=selection.corpus)
    elif card.training.data and corpus_available(card.training.data):
        sel = select(card_config(card))
    else:
        raise TrainingClipsUnknownError(
            f"Teacher {bundle.name} trained on a corpus this run does not use and that is "
            f"not on this machine ({card.training.data or 'unknown'}); its training clips "
            "cannot be checked against this run's validation and test parts.")
    return pooled_clips(sel, ("train",))


def pooled_clips(selection, parts) -> set[str]:
    """The clips of ``parts`` named as a pool names them, ``<corpus key>/<clip>``: a pool's
    names already are; a single corpus's get its key in front."""
    return {c for p in parts for c in _ordered_pooled(selection, p)}


def corpus_of(pooled_name: str) -> str:
    """The corpus key of a `pooled_clips` name."""
    return pooled_name.split("/", 1)[0]


def attach_teachers(data, cfg, *, progress: Progress | None = None):
    """Give ``data`` (a `ser.dataset.Prepared` of ``cfg``) its soft targets and return it:
    the teachers score the same feature rows, in the same order, as ``data``'s training
    tensors (the cached features of the training clips, then each augmented copy)."""
    if not cfg.teachers:
        return data
    from ser.dataset import training_features
    from ser.store import FeatureStore

    checked = _checked_teachers(cfg, data.selection, data.features)
    teachers = [b for b, _ in checked]

    def rows_as(features) -> list:
        # The copies one by one (memory-mapped from the cache), not stacked into a new
        # array beside the run's own training tensors; in the teacher's own log-mel
        # normalisation (one cache entry serves every normalisation).
        feats, aug_parts = training_features(
            cfg, data.selection, stacked=False,
            store=FeatureStore(cfg=features, length=cfg.length))
        return [(feats, data.selection.split.train)] + [(p, None) for p in aug_parts or []]

    kinds = {t.card.features for t in teachers}
    by_kind = {k: rows_as(k) for k in kinds}
    sources = by_kind.get(data.features) or next(iter(by_kind.values()))
    n_rows = len(data.labels["train"])
    masks = None
    if cfg.distill_scope == "heard":
        train = [corpus_of(c) for c in _ordered_pooled(data.selection, "train")]
        copies = n_rows // max(len(train), 1)
        row_corpus = np.tile(np.asarray(train, dtype=object), copies)
        masks = [np.isin(row_corpus, sorted({corpus_of(c) for c in taught}))
                 for _, taught in checked]
    data.soft = soft_targets(teachers, sources, progress=progress, masks=masks,
                             per_teacher=[by_kind[t.card.features] for t in teachers])
    data.teachers = [t.name for t in teachers]
    if len(data.soft) != n_rows:
        raise ValueError(f"The teachers scored {len(data.soft)} training rows but the run "
                         f"trains on {n_rows}.")
    if masks is not None:
        unheard = ~np.any(masks, axis=0)
        labels = np.asarray(data.labels["train"])
        data.soft[unheard] = np.eye(config.N_CLASSES, dtype=np.float32)[labels[unheard]]
    return data


def _ordered_pooled(selection, part: str) -> list[str]:
    """`pooled_clips` names of one part, in split order (one per training row)."""
    names = selection.part(part)["clip"].astype(str).tolist()
    return names if selection.corpus.members else [f"{selection.corpus.key}/{c}"
                                                   for c in names]


def soft_targets(bundles: list[Bundle], sources: list[tuple[dict, np.ndarray | None]], *,
                 progress: Progress | None = None,
                 masks: list[np.ndarray] | None = None,
                 per_teacher: list[list] | None = None) -> np.ndarray:
    """The teachers' averaged calibrated probabilities ``(N, C)`` for the rows of
    ``sources`` in order: each source is ``(arrays, rows)``, feature arrays by space and
    the row indices to take (None = every row). ``masks`` (one boolean ``(N,)`` per
    teacher) limits each teacher to its rows; a row no teacher answers is all zeros.
    ``per_teacher`` (one sources list per teacher, the same rows in each) gives a teacher
    the rows as its own features see them."""
    from ser.dataset import spaces_for

    sizes = [len(rows) if rows is not None else len(next(iter(arrays.values())))
             for arrays, rows in sources]
    total = sum(sizes) * len(bundles)
    out = np.zeros((sum(sizes), config.N_CLASSES), np.float64)
    done = 0
    counts = (np.sum(masks, axis=0).astype(np.float64) if masks is not None
              else np.full(sum(sizes), float(len(bundles))))
    for i, b in enumerate(bundles):
        mask = None if masks is None else np.asarray(masks[i], np.float64)
        keys, offset = spaces_for(b.input_space), 0
        for (arrays, rows), n in zip(sources if per_teacher is None else per_teacher[i],
                                     sizes):
            for start in range(0, n, CHUNK):
                take = (np.arange(start, min(start + CHUNK, n)) if rows is None
                        else np.asarray(rows)[start:start + CHUNK])
                here = slice(offset + start, offset + start + len(take))
                if mask is None or mask[here].any():  # a pool's corpora come in blocks
                    probs = teacher_probs(b, {s: np.asarray(arrays[s][take]) for s in keys})
                    out[here] += probs if mask is None else probs * mask[here, None]
                done += len(take)
                if progress:
                    progress("scoring the training clips with the teachers", done, total)
            offset += n
    return (out / np.maximum(counts, 1)[:, None]).astype(np.float32)


def teacher_probs(bundle: Bundle, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """One teacher's calibrated probabilities for raw feature ``arrays`` (its own
    normalisation; its card's temperature when it has one)."""
    from ser.calibration import apply_temperature, log_probs
    from ser.dataset import model_inputs, predict_proba

    probs = predict_proba(bundle.model, model_inputs(arrays, bundle.input_space,
                                                     bundle.normalisation))
    temperature = (bundle.card.calibration or {}).get("temperature")
    return apply_temperature(log_probs(probs), float(temperature)) if temperature else probs


def distill_loss(logits, soft, temperature: float, reduction: str = "mean"):
    """``T² · KL(soft_T ‖ softmax(logits / T))`` per row, summed or averaged: ``soft`` are
    the teachers' probabilities, softened here by the same ``T`` (``soft ** (1/T)``,
    renormalised)."""
    import torch
    import torch.nn.functional as F

    t = float(temperature)
    target = torch.log(soft.clamp_min(1e-8)) / t
    target = torch.softmax(target, dim=1)
    per_row = F.kl_div(F.log_softmax(logits.float() / t, dim=1), target,
                       reduction="none").sum(dim=1) * t * t
    return per_row.sum() if reduction == "sum" else per_row.mean()
