"""Speaker normalisation: log-mel images standardised by the statistics of the voice itself.

A microphone, a room, a codec and a voice each shift a log-mel image by (nearly) a fixed
amount per band and stretch its range; a model trained on one corpus reads those shifts as
emotion ("everything is angry"). Removing each band's mean over the *speaker's* sounding
frames and dividing by its spread takes the voice and the recording chain out and leaves
how this clip differs from how this person usually sounds.

The statistics need several clips of the same voice, ideally of mixed emotions:

- in training, every training speaker's own clips (and, for each augmented copy set, that
  speaker's copies, so a copy is normalised like a recording from its own chain);
- for a held-out speaker, a few **enrolment** clips drawn from that speaker's clips
  (`draw_enrolment`), which are then never scored;
- on the Predict page, the takes a visitor records to "calibrate to my voice", or the
  speech segments of one long recording (`VoiceProfile`).

Pure numpy; used by `ser.dataset` (training and scoring) and `ser.inference`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: ``TrainConfig.speaker_norm`` values.
SPEAKER_NORMS = ("none", "speaker")
#: Enrolment clips per held-out speaker when a card does not say otherwise.
DEFAULT_ENROL = 10
#: A frame counts as sounding when its loudest band is within this many dB of the clip's
#: peak (FS2 is in dB relative to each clip's maximum), as in `utterance_normalise`.
ACTIVE_DB = 50.0
#: Smallest spread (dB) a band may be divided by: near-constant bands carry no information.
MIN_STD_DB = 1.0


@dataclass
class VoiceStats:
    """Per-band mean and spread (dB) of one voice's sounding log-mel frames."""

    mean: np.ndarray  # (n_mels,)
    std: np.ndarray  # (n_mels,)
    clips: int = 0
    frames: int = 0

    def apply(self, fs2: np.ndarray) -> np.ndarray:
        """Standardise one ``(n_mels, T)`` image or a batch ``(N, n_mels, T)``."""
        x = np.asarray(fs2, dtype=np.float32)
        if x.shape[-2] != self.mean.shape[0]:
            raise ValueError(f"voice statistics have {self.mean.shape[0]} mel bands, the "
                             f"features {x.shape[-2]}")
        return ((x - self.mean[:, None]) / self.std[:, None]).astype(np.float32)


@dataclass
class VectorStats:
    """One voice's mean voice-space vector (`ser.voice`). Speaker normalisation there only
    subtracts it: a few takes cannot estimate 1,792 spreads (dividing by them was measured to
    fail with 10 clips; README, *A pretrained voice encoder*)."""

    mean: np.ndarray  # (VOICE_DIM,)
    clips: int = 0

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Centre one vector or a batch ``(N, VOICE_DIM)`` on the voice's mean."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"voice statistics have {self.mean.shape[0]} values, the "
                             f"features {x.shape[-1]}")
        return (x - self.mean).astype(np.float32)


def speaker_stats(x: np.ndarray, space: str = "fs2") -> VoiceStats | VectorStats:
    """Statistics of one voice from its rows in ``space`` ("fs2" images or "voice" vectors)."""
    if space == "voice":
        v = np.asarray(x, dtype=np.float64)
        if v.ndim != 2 or not len(v):
            raise ValueError("voice statistics need at least one voice vector")
        return VectorStats(v.mean(0).astype(np.float32), clips=int(len(v)))
    return voice_stats(x)


def norm_space(spaces) -> str:
    """The space a speaker-normalised model's statistics are taken in."""
    return "voice" if "voice" in spaces else "fs2"


def voice_stats(fs2: np.ndarray) -> VoiceStats:
    """Statistics of a voice from a batch of its FS2 images ``(N, n_mels, T)``.

    Only sounding frames count, so padding and pauses do not pull the means down. A batch
    without a sounding frame (silence only) gives statistics of all frames.
    """
    x = np.asarray(fs2, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or not len(x):
        raise ValueError("voice statistics need at least one log-mel image")
    frames = np.moveaxis(x, 1, 2).reshape(-1, x.shape[1])  # (N*T, n_mels)
    # a frame at the floor everywhere is padding or digital silence, also when the floor
    # (``top_db``) sits above -ACTIVE_DB
    sounding = frames.max(axis=1) > max(-ACTIVE_DB, float(frames.min()) + 1e-3)
    if sounding.any():
        frames = frames[sounding]
    mean = frames.mean(0, dtype=np.float64)
    std = frames.std(0, dtype=np.float64)
    return VoiceStats(mean.astype(np.float32), np.maximum(std, MIN_STD_DB).astype(np.float32),
                      clips=int(len(x)), frames=int(sounding.sum()))


def normalise_by_group(fs2: np.ndarray, groups: np.ndarray,
                       stats: dict[str, VoiceStats]) -> np.ndarray:
    """Standardise each row of ``fs2`` with the statistics of its group (speaker)."""
    x = np.asarray(fs2, dtype=np.float32)
    out = np.empty(x.shape, dtype=np.float32)
    groups = np.asarray(groups)
    for g in pd.unique(groups):
        rows = np.flatnonzero(groups == g)
        try:
            out[rows] = stats[str(g)].apply(x[rows])
        except KeyError:
            raise ValueError(f"no voice statistics for speaker {str(g)!r}") from None
    return out


def stats_by_group(x: np.ndarray, groups: np.ndarray, space: str = "fs2"
                   ) -> dict[str, VoiceStats | VectorStats]:
    """`speaker_stats` of every group's rows."""
    x = np.asarray(x, dtype=np.float32)
    groups = np.asarray(groups)
    return {str(g): speaker_stats(x[np.flatnonzero(groups == g)], space)
            for g in pd.unique(groups)}


# ----------------------------------------------------------------- voice offsets
# A model that was trained without speaker normalisation can still be adapted to a voice
# after training: a new voice and recording chain shift the model's answers by roughly the
# same amount on every clip ("this voice sounds angry to the model"). The voice's own takes
# (mixed emotions) show that shift, and one log-probability offset per class removes it:
#
#     offset = reference - mean_over_takes(log p(class | take))
#
# ``reference`` is the model's mean log-probability over its validation clips (voices it
# did not train on, six emotions) - how it answers an ordinary mix of emotions - so after
# the offset the takes of the new voice are answered like that mix on average. It is a
# prior-shift correction per voice (Saerens et al., 2002, "Adjusting the outputs of a
# classifier to new a priori probabilities") and assumes the takes cover the emotions
# roughly evenly; takes in one mood would push every later answer away from that mood.

def mean_log_probs(probs: np.ndarray) -> np.ndarray:
    """Mean over rows of the floored log-probabilities (`ser.calibration.log_probs`, the
    floor the stored five-decimal predictions need): a voice's (or a validation set's)
    average answer, in the space the offset is taken in."""
    from ser.calibration import log_probs

    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or not len(p):
        raise ValueError("a voice offset needs the probabilities of at least one take")
    return log_probs(p).mean(axis=0)


def voice_offset(take_probs: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """The per-class log offset that moves a voice's average answer on its takes
    (``take_probs``, rows of probabilities) onto ``reference`` (`mean_log_probs` of the
    model's validation predictions; None: every class equally likely)."""
    mean = mean_log_probs(take_probs)
    ref = (np.zeros_like(mean) if reference is None
           else np.asarray(reference, dtype=np.float64))
    if ref.shape != mean.shape:
        raise ValueError(f"the reference has {ref.shape[0]} classes, the model {mean.shape[0]}")
    out = ref - mean
    return out - out.mean()  # a constant per row changes no softmax; keep it centred


def shift_log_probs(log_probs: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``log_probs`` (rows) moved by ``offset`` and renormalised (log-softmax)."""
    from scipy.special import log_softmax

    return log_softmax(np.asarray(log_probs, dtype=np.float64)
                       + np.asarray(offset, dtype=np.float64), axis=-1)


#: The guided enrolment of the Predict page: one take per emotion in this order (the six
#: labels), then round again. The voice offset assumes the takes cover the emotions evenly.
GUIDE_ORDER: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad")


def guided_emotions(takes: int) -> list[str]:
    """The emotion the guide asks for on each of the first ``takes`` takes."""
    return [GUIDE_ORDER[i % len(GUIDE_ORDER)] for i in range(takes)]


def draw_enrolment(clips: pd.DataFrame, k: int, seed: int = 0) -> np.ndarray:
    """Row positions of ``k`` enrolment clips per speaker of ``clips`` (a manifest).

    The draw is seeded per speaker (by its name), so it does not depend on which other
    speakers are present; a speaker with ``k`` clips or fewer keeps one clip to score.
    """
    if k < 1:
        raise ValueError(f"enrolment needs at least one clip per speaker, not {k}")
    picked = []
    speakers = clips["speaker"].astype(str).to_numpy()
    for spk in pd.unique(speakers):
        rows = np.flatnonzero(speakers == spk)
        h = int.from_bytes(hashlib.sha1(f"{seed}|{spk}".encode()).digest()[:8], "little")
        n = min(k, len(rows) - 1)
        if n >= 1:
            picked.append(np.random.default_rng(h).choice(rows, n, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)


def split_enrolment(clips: pd.DataFrame, k: int, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(enrolment rows, scored rows)`` of ``clips``: `draw_enrolment`'s ``k`` clips per
    speaker, and every other clip of a speaker who could be enrolled (a speaker with a
    single clip is left out of scoring: there is nothing to normalise it with)."""
    picked = draw_enrolment(clips, k, seed)
    keep = np.ones(len(clips), bool)
    keep[picked] = False
    keep &= clips["speaker"].isin(set(clips["speaker"].iloc[picked])).to_numpy()
    return picked, np.flatnonzero(keep)


@dataclass
class VoiceProfile:
    """One voice, from the takes it recorded: waveforms kept in memory, statistics computed
    per feature config on demand (models with other FS2 settings need their own)."""

    clips: list[np.ndarray] = field(default_factory=list)  # mono float32 waveforms
    sample_rate: int = 22050
    #: The emotion each take was meant to carry (one of `ser.config.LABELS`), or None when
    #: the visitor did not say; parallel to ``clips`` (shorter lists mean None).
    labels: list[str | None] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.labels) > len(self.clips):
            raise ValueError(f"{len(self.labels)} labels for {len(self.clips)} takes")
        self.labels = [_check_label(x) for x in self.labels]
        self.labels += [None] * (len(self.clips) - len(self.labels))

    @property
    def seconds(self) -> float:
        return float(sum(len(y) for y in self.clips) / self.sample_rate)

    def add(self, y: np.ndarray, sr: int, label: str | None = None) -> None:
        label = _check_label(label)
        if sr != self.sample_rate:
            from ser.audio import resample

            y = resample(np.asarray(y, dtype=np.float32), sr, self.sample_rate)
        self.clips.append(np.asarray(y, dtype=np.float32))
        self.labels.append(label)
        self._cache.clear()

    def set_label(self, take: int, label: str | None) -> None:
        """Say which emotion take ``take`` (0-based) was meant to carry (None: unknown)."""
        label = _check_label(label)
        if not 0 <= take < len(self.clips):
            raise IndexError(f"there is no take {take + 1}")
        if self.labels[take] != label:
            self.labels[take] = label
            self._cache.clear()

    @property
    def labelled(self) -> list[int]:
        """The takes whose emotion is known, in order."""
        return [i for i, lab in enumerate(self.labels) if lab is not None]

    @property
    def labelled_ready(self) -> bool:
        """True when the labelled takes can refit the models' read-out
        (`ser.training.adapt_classifier`): at least `MIN_LABELLED_TAKES` of them, of at least
        two emotions."""
        known = [self.labels[i] for i in self.labelled]
        return len(known) >= MIN_LABELLED_TAKES and len(set(known)) >= 2

    @property
    def takes(self) -> int:
        return len(self.clips)

    def add_recording(self, y: np.ndarray, sr: int, label: str | None = None) -> float:
        """Add the speech of one take (Silero VAD finds it; pauses and noise are left out)
        as one clip, meant as ``label`` (None: not said); returns the seconds of speech
        added (0 when the take holds none)."""
        from ser.segments import slice_segments, speech_segments

        y = np.asarray(y, dtype=np.float32)
        segs = speech_segments(y, sr)
        pieces = [p for p in slice_segments(y, sr, list(segs)) if len(p)]
        if not pieces:
            return 0.0
        self.add(np.concatenate(pieces), sr, label)
        return float(sum(len(p) for p in pieces) / sr)

    def save(self, path: str | Path) -> Path:
        """Write the takes (speech only) as one ``.npz`` file, atomically."""
        import io

        from ser.fileio import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, sample_rate=np.int64(self.sample_rate),
                            lengths=np.array([len(y) for y in self.clips], np.int64),
                            samples=np.concatenate(self.clips) if self.clips
                            else np.zeros(0, np.float32),
                            labels=np.array([lab or "" for lab in self.labels], dtype="<U16"))
        atomic_write_bytes(path, buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> VoiceProfile:
        """Read a profile written by `save` (raises ``ValueError`` for anything else)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                rate, lengths, samples = int(z["sample_rate"]), z["lengths"], z["samples"]
                labels = [str(x) or None for x in z["labels"]] if "labels" in z else []
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{Path(path).name} is not a saved voice profile ({err})") from None
        if rate <= 0 or lengths.sum() != len(samples) or (lengths < 0).any():
            raise ValueError(f"{Path(path).name} is damaged: its takes do not add up")
        clips = np.split(samples.astype(np.float32), np.cumsum(lengths)[:-1]) if len(
            lengths) else []
        try:
            return cls(clips=list(clips), sample_rate=rate, labels=labels)
        except ValueError as err:
            raise ValueError(f"{Path(path).name} is damaged: {err}") from None

    def stats(self, cfg, space: str = "fs2") -> VoiceStats | VectorStats:
        """The voice's statistics under `FeatureConfig` ``cfg`` in ``space`` (cached)."""
        from ser.features import clip_features

        if not self.clips:
            raise ValueError("the voice profile holds no speech yet")
        def compute() -> VoiceStats | VectorStats:
            from ser.audio import resample

            rows = []
            for y in self.clips:
                if self.sample_rate != cfg.sample_rate:
                    y = resample(y, self.sample_rate, cfg.sample_rate)
                rows.append(clip_features(y, cfg=cfg, spaces=(space,))[space])
            return speaker_stats(np.stack(rows), space)

        key = json.dumps(cfg.as_dict(), sort_keys=True)
        return self.remember(key if space == "fs2" else (key, space), compute)

    def remember(self, key, compute):
        """``compute()``'s result for ``key``, computed once per set of takes (adding a
        take forgets everything): voice statistics per feature config, offsets per model."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


#: The fewest labelled takes (of at least two emotions) that refit the models' read-out.
MIN_LABELLED_TAKES = 3


def _check_label(label: str | None) -> str | None:
    from ser import config

    if label is None or label in config.LABELS:
        return label
    raise ValueError(f"{label!r} is not one of the six emotions ({', '.join(config.LABELS)})")


PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,39}$")


def profile_path(name: str, folder: str | Path | None = None) -> Path:
    """Where the named profile lives; the name must be 1–40 letters, digits, spaces, '-'
    or '_' (it becomes a file name: no path can be smuggled in)."""
    from ser import config

    if not PROFILE_NAME.match(name or ""):
        raise ValueError("A profile name is 1–40 letters, digits, spaces, '-' or '_'.")
    return Path(folder or config.profiles_dir()) / f"{name.strip()}.npz"


def saved_profiles(folder: str | Path | None = None) -> list[str]:
    from ser import config

    root = Path(folder or config.profiles_dir())
    return sorted(p.stem for p in root.glob("*.npz")) if root.is_dir() else []


def reliability(seconds: float, takes: int) -> tuple[str, str]:
    """How far a profile of ``seconds`` of speech in ``takes`` takes can be trusted, as
    (level, sentence). Thresholds follow the enrolment benchmark (`benchmarks/enrolment.py`):
    scores settle from about ten clips (≈ 25 s of acted speech) and are unreliable below
    three."""
    if takes >= 10 or seconds >= 25:
        return "good", "Enough speech for stable voice statistics."
    if takes >= 3 or seconds >= 8:
        return "fair", ("Usable, but scores still move as you add takes; two rounds of the "
                        "six emotions (12 takes, about 25 s) are best.")
    return "poor", ("Too little speech: statistics from fewer than three takes are noisy. "
                    "Record a few more sentences, each in the mood asked for.")


def usable(profile: VoiceProfile | None) -> bool:
    """True when ``profile`` holds enough speech for speaker-normalised models (reliability
    at least "fair"): with a single short take the statistics are so noisy that the models
    collapse onto one label (README, *Calibrating to a voice*)."""
    return profile is not None and bool(profile.clips) and \
        reliability(profile.seconds, profile.takes)[0] != "poor"
