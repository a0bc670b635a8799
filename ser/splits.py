"""Train / validation / test splits and the leakage check every split must pass.

Four protocols:

- ``random``: the Keras notebook seed's protocol — 70/30 train/test stratified by emotion,
  then 5 % of train held out for validation, seeded. The same actors (and sentences) land
  on both sides, so it measures how well a model knows *these* voices, not new ones.
- ``speaker``: speaker-independent. For CREMA-D the standard actor lists (TensorFlow
  Datasets' split, 63/9/19 actors); for any other corpus the same recipe, seeded.
- ``kfold``: actor-grouped k-fold for cross-validation.
- ``loco``: leave one corpus out — test on every clip of one corpus of a pool, train on
  the others (validation speakers taken from each of them).

Clips whose ``emotion`` is empty (a corpus label outside the six: calm, surprise, boredom…)
are never placed in any part; they stay in the manifest, and row positions always index
the full manifest passed in.

On a pool of corpora (a manifest whose ``corpus`` column holds several keys, see
:func:`ser.corpora.load_pool`) the ``speaker`` protocol partitions the speakers of each
corpus separately — CREMA-D by its standard lists, the others by the seeded 70/10/20
recipe — so every corpus is present in every part; a corpus with fewer than three
speakers (TESS has two) goes wholly to training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser import config
from ser.corpora import display_name
from ser.corpora.crema_d import STANDARD_TEST_ACTORS, STANDARD_VALIDATION_ACTORS

PROTOCOLS = ("speaker", "random", "kfold", "loco")
PROTOCOL_NAMES = {
    "speaker": "speaker-independent",
    "random": "random stratified 70/30 (seed protocol, speakers shared)",
    "kfold": "actor-grouped k-fold",
    "loco": "leave-one-corpus-out",
}
#: A corpus needs this many speakers to get its own train/validation/test speakers.
MIN_SPEAKERS = 3


def corpus_ids(manifest: pd.DataFrame) -> np.ndarray:
    """Corpus key of every row: the ``corpus`` column, else ``dataset``, else one corpus."""
    for col in ("corpus", "dataset"):
        if col in manifest:
            return manifest[col].fillna("").astype(str).to_numpy()
    return np.full(len(manifest), "corpus", dtype=object)


def usable(manifest: pd.DataFrame) -> np.ndarray:
    """True for rows whose emotion is one of the six (the only rows a split may use)."""
    return manifest["emotion"].isin(config.LABELS).to_numpy()


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
    test_corpus: str | None = None
    fold: int | None = None
    k: int | None = None

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def card(self, manifest: pd.DataFrame) -> dict:
        """JSON-ready record for bundles and reports.

        Besides protocol, seed, counts and speakers per part it holds ``corpora`` (the
        corpus keys with clips in the split), ``per_corpus`` (clips per part and corpus),
        ``outside_six`` (clips left out because their label is none of the six) and, when
        set, ``test_corpus`` / ``fold`` / ``k``: enough for :func:`split_from_card`.
        """
        corp = corpus_ids(manifest)
        used = np.concatenate(list(self.parts().values())).astype(int)
        present = list(dict.fromkeys(corp))
        card = {
            "protocol": self.protocol,
            "protocol_name": PROTOCOL_NAMES.get(self.protocol, self.protocol),
            "description": self.description,
            "seed": self.seed,
            "counts": {k: int(len(v)) for k, v in self.parts().items()},
            "speakers": {k: sorted(manifest["speaker"].iloc[v].unique().tolist())
                         for k, v in self.parts().items()},
            "corpora": [c for c in present if c in set(corp[used])],
            "per_corpus": {c: {k: int((corp[v] == c).sum()) for k, v in self.parts().items()}
                           for c in present},
            "outside_six": int((~usable(manifest)).sum()),
        }
        if self.test_corpus is not None:
            card["test_corpus"] = self.test_corpus
        if self.fold is not None:
            card["fold"], card["k"] = self.fold, self.k
        return card


def random_stratified(manifest: pd.DataFrame, *, seed: int = 42,
                      test_fraction: float = config.RANDOM_TEST_FRACTION,
                      val_fraction: float = config.RANDOM_VAL_FRACTION) -> Split:
    """The seed protocol: stratified by emotion, 70/30, then 5 % of train for validation.

    On a pool the strata are (corpus, emotion), so each corpus keeps its share in every part.
    """
    from sklearn.model_selection import train_test_split

    idx = np.flatnonzero(usable(manifest))
    corp = corpus_ids(manifest)
    emotion = manifest["emotion"].astype(str).to_numpy()
    strata = [emotion]
    if len(set(corp[idx])) > 1:
        strata.insert(0, np.char.add(np.char.add(corp.astype(str), "|"), emotion.astype(str)))
    notes = []

    def split(rows: np.ndarray, size: float, part: str) -> tuple[np.ndarray, np.ndarray]:
        # The finest strata that fit; tiny corpora (or a 5 % part smaller than the number
        # of classes) fall back to coarser ones, and finally to none, instead of failing.
        for level, y in enumerate([*strata, None]):
            try:
                out = train_test_split(rows, test_size=size, random_state=seed,
                                       stratify=None if y is None else y[rows])
            except ValueError:
                continue
            if level:
                notes.append(f"; {part} drawn " + ("by emotion only" if y is not None else
                                                   "without stratification") +
                             " (too few clips)")
            return out
        raise ValueError(f"Too few clips ({len(rows)}) for a random split; use more data.")

    train, test = split(idx, test_fraction, "test")
    train, val = split(train, val_fraction, "validation")
    return Split("random", np.sort(train), np.sort(val), np.sort(test), seed,
                 f"random stratified: {1 - test_fraction:.0%}/{test_fraction:.0%} train/test, "
                 f"{val_fraction:.0%} of train as validation, seed {seed}; speakers are "
                 "shared between train and test" + "".join(notes) + _left_out(manifest))


def _left_out(manifest: pd.DataFrame) -> str:
    n = int((~usable(manifest)).sum())
    return f"; {n:,} clips with labels outside the six left out" if n else ""


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
    ok = usable(manifest)
    idx = np.arange(len(manifest))
    return idx[ok & ~is_val & ~is_test], idx[ok & is_val], idx[ok & is_test]


def _is_crema(key: str, speakers) -> bool:
    return key == "crema-d" and set(STANDARD_TEST_ACTORS) <= set(speakers)


def _partition(speakers: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Validation and test speakers by the seeded 70/10/20 recipe (≥ 1 validation speaker)."""
    train_spk, val_spk, test_spk = shuffled_actor_partition(speakers, seed)
    if not val_spk:  # tiny corpora: take one training speaker for validation
        val_spk = train_spk[-1:]
    return val_spk, test_spk


def corpus_partitions(manifest: pd.DataFrame, seed: int = 0,
                      corpora: list[str] | None = None) -> dict[str, dict]:
    """Each corpus's own validation / test speakers, as used on pools.

    Parameters
    ----------
    manifest
        A manifest with a ``corpus`` column (pooled speakers may be ``corpus:id``).
    seed
        Seed of the 70/10/20 shuffle (CREMA-D uses its standard lists whatever the seed).
    corpora
        Keys to partition; default every corpus in the manifest.

    Returns
    -------
    dict
        ``{corpus: {"val": [...], "test": [...], "how": str}}`` with speakers as they
        appear in the manifest. A corpus with fewer than :data:`MIN_SPEAKERS` speakers gets
        empty lists (all of it trains).
    """
    corp, ok = corpus_ids(manifest), usable(manifest)
    spk = manifest["speaker"].astype(str).to_numpy()
    out = {}
    for key in corpora if corpora is not None else list(dict.fromkeys(corp[ok])):
        full = sorted(set(spk[ok & (corp == key)]))
        # Partition the corpus's own ids, so a corpus splits the same alone and in a pool.
        bare = {s.removeprefix(f"{key}:"): s for s in full}
        name = display_name(key)
        if len(bare) < MIN_SPEAKERS:
            out[key] = {"val": [], "test": [], "how": f"{name} has {len(bare)} speaker"
                        f"{'s' if len(bare) != 1 else ''}, all in training"}
            continue
        if _is_crema(key, bare):
            val, test = list(STANDARD_VALIDATION_ACTORS), list(STANDARD_TEST_ACTORS)
            how = f"{name} standard actor lists"
        else:
            val, test = _partition(list(bare), seed)
            how = f"{name} {len(bare) - len(val) - len(test)}/{len(val)}/{len(test)} speakers"
        out[key] = {"val": sorted(bare[s] for s in val if s in bare),
                    "test": sorted(bare[s] for s in test if s in bare), "how": how}
    return out


def speaker_independent(manifest: pd.DataFrame, *, seed: int = 0) -> Split:
    """No speaker in more than one part. CREMA-D uses the standard actor lists.

    On a pool, each corpus is partitioned by its own speakers (see the module docstring).
    """
    corpora = list(dict.fromkeys(corpus_ids(manifest)[usable(manifest)]))
    if len(corpora) > 1:
        return _pool_speaker_independent(manifest, corpora, seed)
    speakers = manifest["speaker"].astype(str)[usable(manifest)].unique().tolist()
    is_crema = (manifest["dataset"] == "crema-d").all() and set(STANDARD_TEST_ACTORS) <= set(
        speakers)
    if is_crema:
        val_spk, test_spk = STANDARD_VALIDATION_ACTORS, STANDARD_TEST_ACTORS
        desc = ("speaker-independent, standard CREMA-D actor lists (63 train / 9 validation / "
                "19 test actors)")
        used_seed = 0
    else:
        if len(speakers) < MIN_SPEAKERS:
            raise ValueError(
                f"A speaker-independent split needs at least 3 speakers; the corpus has "
                f"{len(speakers)}. Use the random protocol, or pool this corpus with others "
                "(its clips then all go to training)."
                + (" For your own recordings, name the speakers in a CSV (path, label, "
                   "speaker) or in sub-folders <label>/<speaker>/."
                   if corpora and corpora[0].startswith("custom") else ""))
        val_spk, test_spk = _partition(speakers, seed)
        desc = f"speaker-independent, speakers shuffled with seed {seed}, 70/10/20 by speaker"
        used_seed = seed
    train, val, test = _by_speakers(manifest, val_spk, test_spk)
    split = Split("speaker", train, val, test, used_seed, desc + _left_out(manifest))
    split.speakers = {"val": sorted(val_spk), "test": sorted(test_spk)}
    return split


def _pool_speaker_independent(manifest: pd.DataFrame, corpora: list[str], seed: int) -> Split:
    parts = corpus_partitions(manifest, seed, corpora)
    val_spk = [s for p in parts.values() for s in p["val"]]
    test_spk = [s for p in parts.values() for s in p["test"]]
    if not test_spk:
        raise ValueError("No corpus in this pool has the 3 speakers a speaker-independent "
                         "split needs; use the random protocol, or add a larger corpus.")
    train, val, test = _by_speakers(manifest, val_spk, test_spk)
    desc = (f"speaker-independent inside each corpus, seed {seed} (train/validation/test "
            f"speakers): " + "; ".join(p["how"] for p in parts.values()))
    return Split("speaker", train, val, test, seed, desc + _left_out(manifest),
                 {"val": sorted(val_spk), "test": sorted(test_spk)})


def actor_kfold(manifest: pd.DataFrame, *, k: int = 5, seed: int = 0) -> list[Split]:
    """Actor-grouped k-fold: fold i tests on group i and validates on group i+1."""
    ids = sorted(manifest["speaker"].astype(str)[usable(manifest)].unique())
    if len(ids) < k:
        raise ValueError(f"{k}-fold needs at least {k} speakers; the corpus has {len(ids)}.")
    np.random.RandomState(seed).shuffle(ids)
    groups = [sorted(ids[i::k]) for i in range(k)]
    folds = []
    for i in range(k):
        val_spk, test_spk = groups[(i + 1) % k], groups[i]
        train, val, test = _by_speakers(manifest, val_spk, test_spk)
        folds.append(Split("kfold", train, val, test, seed,
                           f"actor-grouped {k}-fold, fold {i + 1}/{k}, seed {seed}"
                           + _left_out(manifest),
                           {"val": val_spk, "test": test_spk}, fold=i, k=k))
    return folds


def leave_one_corpus_out(manifest: pd.DataFrame, test_corpus: str | None, *,
                         seed: int = 0) -> Split:
    """Test on every six-emotion clip of ``test_corpus``; train and validate on the rest.

    Validation takes each remaining corpus's validation speakers (see
    :func:`corpus_partitions`); everything else of the remaining corpora trains.

    Raises
    ------
    ValueError
        The manifest holds fewer than two corpora, ``test_corpus`` is missing or not one
        of them, or it has no clip with one of the six emotions.
    """
    ok, corp = usable(manifest), corpus_ids(manifest)
    corpora = list(dict.fromkeys(corp))
    if len(corpora) < 2:
        raise ValueError(
            "Leave-one-corpus-out needs a pool of at least two corpora; this data holds "
            f"only {display_name(corpora[0]) if corpora else 'nothing'}. Pool corpora with "
            "a data string such as '/data/crema-d,/data/tess' (or ser.corpora.load_pool).")
    choices = ", ".join(corpora)
    if not test_corpus:
        raise ValueError(f"Leave-one-corpus-out needs the corpus to test on: set test_corpus "
                         f"to one of {choices}.")
    key = str(test_corpus).strip().lower()
    if key not in corpora:
        raise ValueError(f"test_corpus {test_corpus!r} is not in this pool; choose one of "
                         f"{choices}.")
    is_test = ok & (corp == key)
    if not is_test.any():
        raise ValueError(f"{display_name(key)} has no clip labelled with one of the six "
                         "emotions, so it cannot be the test corpus.")
    others = [c for c in corpora if c != key and (ok & (corp == c)).any()]
    parts = corpus_partitions(manifest, seed, others)
    spk = manifest["speaker"].astype(str).to_numpy()
    val_spk = sorted(s for c in others for s in parts[c]["val"])
    is_val = ok & (corp != key) & np.isin(spk, val_spk)
    idx = np.arange(len(manifest))
    train, val, test = idx[ok & (corp != key) & ~is_val], idx[is_val], idx[is_test]
    desc = (f"leave-one-corpus-out: test on all of {display_name(key)} ({len(test):,} clips); "
            f"train on {' + '.join(display_name(c) for c in others)}, validation speakers "
            f"from each (seed {seed}): " + "; ".join(parts[c]["how"] for c in others))
    return Split("loco", train, val, test, seed, desc + _left_out(manifest),
                 {"val": val_spk, "test": sorted(set(spk[test]))}, test_corpus=key)


def make_split(manifest: pd.DataFrame, protocol: str = "speaker", *, seed: int = 0,
               fold: int = 0, k: int = 5, test_corpus: str | None = None) -> Split:
    """One entry point by name, used by training configs and the CLI.

    ``fold`` and ``k`` apply to ``kfold``; ``test_corpus`` (a corpus key) to ``loco``.
    """
    if protocol == "speaker":
        return speaker_independent(manifest, seed=seed)
    if protocol == "random":
        return random_stratified(manifest, seed=seed)
    if protocol == "kfold":
        return actor_kfold(manifest, k=k, seed=seed)[fold]
    if protocol == "loco":
        return leave_one_corpus_out(manifest, test_corpus, seed=seed)
    raise ValueError(f"Unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")


def split_from_card(manifest: pd.DataFrame, card: dict) -> Split:
    """Rebuild the split a card (:meth:`Split.card`) describes, on the same manifest."""
    return make_split(manifest, card.get("protocol", "speaker"), seed=card.get("seed") or 0,
                      fold=card.get("fold") or 0, k=card.get("k") or 5,
                      test_corpus=card.get("test_corpus"))


def _row_column(manifest: pd.DataFrame, rows: np.ndarray, name: str) -> np.ndarray:
    """Column ``name`` of ``rows`` as strings ("" where missing); ``corpus`` falls back to
    `corpus_ids` when the manifest has no such column."""
    if name == "corpus" and "corpus" not in manifest:
        return corpus_ids(manifest)[rows].astype(str)
    return manifest[name].iloc[rows].fillna("").astype(str).to_numpy()


def class_balance_weights(manifest: pd.DataFrame, rows,
                          by: tuple[str, ...] = ("corpus", "emotion")) -> np.ndarray:
    """Per-row sample weights: equal total weight per ``by[0]`` group, and inside each group
    equal weight per combination of the remaining columns.

    With the default ``by`` every corpus weighs the same and, inside a corpus, every
    emotion does, however many clips each has. Meant for
    ``torch.utils.data.WeightedRandomSampler`` (or as per-sample loss weights).

    Parameters
    ----------
    manifest
        The manifest (``corpus`` falls back to ``dataset`` when missing).
    rows
        Row positions into ``manifest`` (e.g. ``split.train``).
    by
        Column names: the first is balanced across, the rest within it.

    Returns
    -------
    numpy.ndarray
        float64 weights aligned with ``rows``, averaging 1.
    """
    rows = np.asarray(rows, dtype=int)
    if not len(rows):
        return np.zeros(0)
    if not by:
        return np.ones(len(rows))

    def column(name: str) -> np.ndarray:
        return _row_column(manifest, rows, name)

    group = column(by[0])
    inner = (pd.DataFrame({c: column(c) for c in by[1:]}).agg("|".join, axis=1).to_numpy()
             if len(by) > 1 else np.full(len(rows), ""))
    df = pd.DataFrame({"g": group, "c": inner})
    n_groups = df["g"].nunique()
    classes_in_group = df.groupby("g")["c"].transform("nunique").to_numpy()
    cell = df.groupby(["g", "c"])["c"].transform("size").to_numpy()
    w = 1.0 / (n_groups * classes_in_group * cell)
    return w * (len(rows) / w.sum())


def vote_weights(manifest: pd.DataFrame, rows, unheard: float) -> np.ndarray | None:
    """Per-row sample weights from the crowd raters' voice-only votes (``human_vote``,
    CREMA-D's summaryTable.csv): a clip whose intended emotion is not among the voted labels
    (the raters did not hear it in the voice) is drawn ``unheard`` times as often as one
    whose emotion they heard. Inside each corpus and emotion the weights are scaled back to
    one per clip on average, so every emotion and corpus keeps its share of the draws;
    clips without a vote (other corpora) keep weight 1. None when no row has a vote.
    """
    rows = np.asarray(rows, dtype=int)
    if "human_vote" not in manifest or not len(rows):
        return None
    votes = _row_column(manifest, rows, "human_vote")
    voted = votes != ""
    if not voted.any():
        return None
    emotion = _row_column(manifest, rows, "emotion")
    heard = np.array([e in v.split(":") for e, v in zip(emotion, votes)])
    w = np.where(voted & ~heard, float(unheard), 1.0)
    df = pd.DataFrame({"g": _row_column(manifest, rows, "corpus"), "e": emotion, "w": w})
    mean = df.groupby(["g", "e"])["w"].transform("mean").to_numpy()
    return w / mean


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
            lines.append(f"{pair}: {n} sentences spoken on both sides (expected when a corpus "
                         "reuses its prompts, as CREMA-D's 12 sentences are)")
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
    # Corpora without sentence codes (spontaneous speech) leave them empty: no evidence.
    sent = manifest["sentence"].fillna("").astype(str).to_numpy()
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
        shared_sent[key] = len((set(sent[a]) & set(sent[t])) - {""})
    return LeakageReport(shared_speakers, shared_audio, shared_sent)
