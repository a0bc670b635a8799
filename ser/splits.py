"""Train / validation / test splits and the leakage check every split must pass.

Three protocols:

- ``random``: the Keras notebook seed's protocol — 70/30 train/test stratified by emotion,
  then 5 % of train held out for validation, seeded. The same actors (and sentences) land
  on both sides, so it measures how well a model knows *these* voices, not new ones.
- ``speaker``: speaker-independent. For CREMA-D the standard actor lists (TensorFlow
  Datasets' split, 63/9/19 actors); for any other corpus the same recipe, seeded.
- ``kfold``: actor-grouped k-fold for cross-validation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser import config
from ser.corpora.crema_d import STANDARD_TEST_ACTORS, STANDARD_VALIDATION_ACTORS

PROTOCOLS = ("speaker", "random", "kfold")
PROTOCOL_NAMES = {
    "speaker": "speaker-independent",
    "random": "random stratified 70/30 (seed protocol, speakers shared)",
    "kfold": "actor-grouped k-fold",
}


@dataclass
class Split:
    """Row positions (into the manifest) of each part, and how they were chosen."""

    protocol: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int | None = None
    description: str = ""
    speakers: dict[str, list[str]] = field(default_factory=dict)

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def card(self, manifest: pd.DataFrame) -> dict:
        """JSON-ready record for bundles and reports."""
        return {
            "protocol": self.protocol,
            "protocol_name": PROTOCOL_NAMES.get(self.protocol, self.protocol),
            "description": self.description,
            "seed": self.seed,
            "counts": {k: int(len(v)) for k, v in self.parts().items()},
            "speakers": {k: sorted(manifest["speaker"].iloc[v].unique().tolist())
                         for k, v in self.parts().items()},
        }


def random_stratified(manifest: pd.DataFrame, *, seed: int = 42,
                      test_fraction: float = config.RANDOM_TEST_FRACTION,
                      val_fraction: float = config.RANDOM_VAL_FRACTION) -> Split:
    """The seed protocol: stratified by emotion, 70/30, then 5 % of train for validation."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(manifest))
    y = manifest["emotion"].to_numpy()
    train, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    train, val = train_test_split(train, test_size=val_fraction, stratify=y[train],
                                  random_state=seed)
    return Split("random", np.sort(train), np.sort(val), np.sort(test), seed,
                 f"random stratified: {1 - test_fraction:.0%}/{test_fraction:.0%} train/test, "
                 f"{val_fraction:.0%} of train as validation, seed {seed}; speakers are "
                 "shared between train and test")


def shuffled_actor_partition(speakers: list[str], seed: int = 0,
                             fractions: tuple[float, float] = (0.7, 0.8)
                             ) -> tuple[list[str], list[str], list[str]]:
    """TFDS recipe: shuffle the sorted speaker IDs with RandomState(seed), cut at 70 %/80 %.

    For CREMA-D's 91 actors and seed 0 this yields exactly the standard lists.
    """
    ids = sorted(set(speakers))
    np.random.RandomState(seed).shuffle(ids)
    a, b = int(len(ids) * fractions[0]), int(len(ids) * fractions[1])
    return sorted(ids[:a]), sorted(ids[a:b]), sorted(ids[b:])


def _by_speakers(manifest: pd.DataFrame, val_spk, test_spk) -> tuple[np.ndarray, ...]:
    spk = manifest["speaker"].astype(str).to_numpy()
    is_val, is_test = np.isin(spk, list(val_spk)), np.isin(spk, list(test_spk))
    idx = np.arange(len(manifest))
    return idx[~is_val & ~is_test], idx[is_val], idx[is_test]


def speaker_independent(manifest: pd.DataFrame, *, seed: int = 0) -> Split:
    """No speaker in more than one part. CREMA-D uses the standard actor lists."""
    speakers = manifest["speaker"].astype(str).unique().tolist()
    is_crema = (manifest["dataset"] == "crema-d").all() and set(STANDARD_TEST_ACTORS) <= set(
        speakers)
    if is_crema:
        val_spk, test_spk = STANDARD_VALIDATION_ACTORS, STANDARD_TEST_ACTORS
        desc = ("speaker-independent, standard CREMA-D actor lists (63 train / 9 validation / "
                "19 test actors)")
        used_seed = 0
    else:
        if len(speakers) < 3:
            raise ValueError(f"A speaker-independent split needs at least 3 speakers; the "
                             f"corpus has {len(speakers)}.")
        _, val_spk, test_spk = shuffled_actor_partition(speakers, seed)
        if not val_spk:  # tiny corpora: take one training speaker for validation
            train_spk, _, _ = shuffled_actor_partition(speakers, seed)
            val_spk = train_spk[-1:]
        desc = f"speaker-independent, speakers shuffled with seed {seed}, 70/10/20 by speaker"
        used_seed = seed
    train, val, test = _by_speakers(manifest, val_spk, test_spk)
    split = Split("speaker", train, val, test, used_seed, desc)
    split.speakers = {"val": sorted(val_spk), "test": sorted(test_spk)}
    return split


def actor_kfold(manifest: pd.DataFrame, *, k: int = 5, seed: int = 0) -> list[Split]:
    """Actor-grouped k-fold: fold i tests on group i and validates on group i+1."""
    ids = sorted(manifest["speaker"].astype(str).unique())
    if len(ids) < k:
        raise ValueError(f"{k}-fold needs at least {k} speakers; the corpus has {len(ids)}.")
    np.random.RandomState(seed).shuffle(ids)
    groups = [sorted(ids[i::k]) for i in range(k)]
    folds = []
    for i in range(k):
        val_spk, test_spk = groups[(i + 1) % k], groups[i]
        train, val, test = _by_speakers(manifest, val_spk, test_spk)
        folds.append(Split("kfold", train, val, test, seed,
                           f"actor-grouped {k}-fold, fold {i + 1}/{k}, seed {seed}",
                           {"val": val_spk, "test": test_spk}))
    return folds


def make_split(manifest: pd.DataFrame, protocol: str = "speaker", *, seed: int = 0,
               fold: int = 0, k: int = 5) -> Split:
    """One entry point by name, used by training configs and the CLI."""
    if protocol == "speaker":
        return speaker_independent(manifest, seed=seed)
    if protocol == "random":
        return random_stratified(manifest, seed=seed)
    if protocol == "kfold":
        return actor_kfold(manifest, k=k, seed=seed)[fold]
    raise ValueError(f"Unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")


@dataclass
class LeakageReport:
    """What train/validation and test have in common. ``clean`` when nothing."""

    shared_speakers: dict[str, list[str]]
    shared_audio: dict[str, list[tuple[str, str]]]
    shared_sentences: dict[str, int]

    @property
    def clean(self) -> bool:
        return not any(self.shared_speakers.values()) and not any(self.shared_audio.values())

    def as_dict(self) -> dict:
        return {"clean": self.clean, "shared_speakers": self.shared_speakers,
                "shared_audio": {k: [list(p) for p in v] for k, v in self.shared_audio.items()},
                "shared_sentences": self.shared_sentences}

    def text(self) -> str:
        lines = []
        for pair, spk in self.shared_speakers.items():
            lines.append(f"{pair}: {len(spk)} shared speakers" + (f" ({', '.join(spk[:8])}"
                         f"{', …' if len(spk) > 8 else ''})" if spk else ""))
        for pair, same in self.shared_audio.items():
            lines.append(f"{pair}: {len(same)} identical recordings on both sides"
                         + (f" (e.g. {same[0][0]} = {same[0][1]})" if same else ""))
        for pair, n in self.shared_sentences.items():
            lines.append(f"{pair}: {n} sentences spoken on both sides (expected: CREMA-D has 12)")
        lines.append("verdict: " + ("no leakage" if self.clean else "LEAKAGE — test clips share "
                                    "speakers or audio with the training data"))
        return "\n".join(lines)


def file_hashes(paths) -> list[str]:
    """sha1 of each file's bytes (identical recordings are byte-identical in CREMA-D)."""
    return [hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in paths]


def check_leakage(split: Split, manifest: pd.DataFrame,
                  hashes: list[str] | None = None) -> LeakageReport:
    """Report speakers and identical audio that the test part shares with train or val."""
    if hashes is None:
        hashes = file_hashes(manifest["path"])
    hashes = np.asarray(hashes)
    spk = manifest["speaker"].astype(str).to_numpy()
    clip = manifest["clip"].to_numpy() if "clip" in manifest else manifest["path"].to_numpy()
    sent = manifest["sentence"].to_numpy()
    shared_speakers, shared_audio, shared_sent = {}, {}, {}
    for other in ("train", "val"):
        a, t = getattr(split, other), split.test
        key = f"{other}/test"
        shared_speakers[key] = sorted(set(spk[a]) & set(spk[t]))
        test_by_hash = {}
        for i in t:
            test_by_hash.setdefault(hashes[i], []).append(clip[i])
        shared_audio[key] = sorted((clip[i], c) for i in a for c in test_by_hash.get(hashes[i],
                                                                                      ()))
        shared_sent[key] = len(set(sent[a]) & set(sent[t]))
    return LeakageReport(shared_speakers, shared_audio, shared_sent)
