"""TrainConfig: the recipe of one training run, as plain data.

It is what a run's ``config.json`` holds, what every CLI ``train`` flag sets and what a
model card records under ``training``, so ``python -m ser train --config card.json``
repeats a run. No torch here: the command line reads it before deciding what to import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ser.augment import AugmentConfig
from ser.features import LENGTHS, FeatureConfig

#: Most augmented copies of each training clip a run may ask for (each one adds a full
#: training set of features in memory).
MAX_COPIES = 8

SCHEDULES = ("none", "cosine", "plateau")
#: Training arithmetic (`TrainConfig.precision`).
PRECISIONS = ("auto", "bf16", "fp32")


class RunCancelledError(Exception):
    """A run stopped on request before training began: no weights exist to keep. (Here,
    not in `ser.runs` or `ser.training`, so that both can name it without a cycle.)"""


@dataclass
class TrainConfig:
    """Plain data describing one training run; stored as the run's config.json."""

    arch: str = "lenet2d"
    activation: str | None = None  # None → the architecture's default
    width: float | None = None
    dropout: float | None = None
    data: str | None = None  # corpus folder; None → SER_DATA_DIR, data/, or the demo corpus
    split: str = "speaker"  # speaker | random | kfold | loco
    split_seed: int = 0
    fold: int = 0
    test_corpus: str = ""  # loco: the corpus held out for testing (e.g. "tess")
    balance: str = "none"  # none | corpus: draw batches so every corpus weighs the same
    #: ``"mixed"``: every batch a random draw of the training rows; ``"speaker"``: every
    #: batch holds rows of one speaker only (the speaker's clips and their copies, cut into
    #: batches of near-equal size), so BatchNorm normalises each batch by one voice's
    #: statistics in training, as voice adaptation does at prediction time
    #: (`ser.training.adapt_batchnorm`). Stored only when "speaker".
    batches: str = "mixed"
    #: Crowd raters' votes (CREMA-D's voice-only ``VoiceVote``): a training clip whose
    #: intended emotion the raters did not hear in the voice is drawn this many times as
    #: often as one whose emotion they heard, each corpus and emotion keeping its share of
    #: the draws (`ser.splits.vote_weights`). 1 = off (every clip alike); stored when not 1.
    vote_weight: float = 1.0
    #: "speaker": standardise each log-mel image by its speaker's own statistics
    #: (`ser.speakers`); held-out speakers give ``enrol`` clips for them, never scored.
    speaker_norm: str = "none"
    enrol: int = 10
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
    #: Random log-mel floor (2D models): each training image is clipped, batch by batch, at a
    #: floor drawn per example between ``random_floor`` and ``top_db`` dB below its peak, so
    #: how quiet a recording's background is cannot be a reliable cue; 0 disables.
    random_floor: float = 0.0
    #: Random denoising (2D models): this share of training images, drawn batch by batch,
    #: has its stationary noise floor subtracted at a random strength (`random_denoise`),
    #: so a clean recording's near-silence is seen with every emotion; 0 disables.
    random_denoise: float = 0.0
    #: Frequency-wise MixStyle (2D models): the probability, per training batch, that every
    #: image's per-band mean and spread over time are mixed with another image's
    #: (`ser.augment.freq_mixstyle`), so a recording's or a voice's spectral colour is not
    #: a reliable cue; 0 disables.
    mixstyle: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    #: Knowledge distillation (`ser.distill`): comma-separated teachers — shipped model
    #: names, bundle paths or model folders, or ``ensemble`` (the shipped ensemble's
    #: members) — whose averaged calibrated probabilities on every training row (augmented copies
    #: included) become soft targets. Empty = no teacher. The three fields are stored only
    #: when ``teachers`` is set, so older configs and cards are unchanged.
    teachers: str = ""
    distill: float = 0.5  # weight of the teacher term (the labels' cross-entropy gets 1 − it)
    distill_temperature: float = 2.0  # both distributions are softened by it in that term
    #: ``all``: the teachers answer for every training row; ``heard``: each only for rows of
    #: the corpora it trained on, the label standing in where none did (stored when not all).
    distill_scope: str = "all"
    patience: int = 8  # epochs without a better validation UAR before stopping; 0 disables
    #: Stochastic weight averaging: the weights at the end of the last ``swa`` epochs are
    #: averaged (BatchNorm statistics measured again) and the average replaces the best
    #: epoch when its validation UAR is higher. 0 = off; stored only when on.
    swa: int = 0
    #: Corpus-adversarial training (`ser.adversary`): the largest weight λ of the reversed
    #: gradient from a classifier of the clip's corpus (it ramps up from 0). Needs a pool of
    #: corpora; 0 = off, stored only when on.
    adversary: float = 0.0
    #: Fit the final linear layer in one step instead of epochs of Adam, for models that are
    #: one linear layer on their input (``voicelin``): full-batch L-BFGS on the training
    #: rows (copies included), minimising their cross-entropy (class-weighted with
    #: ``class_weights``) plus ``readout_l2`` × ½‖W‖² — a multinomial logistic regression,
    #: the inverse of scikit-learn's ``C``. lr, schedule and patience do not apply. 0 = off
    #: (epochs with Adam); stored only when on.
    readout_l2: float = 0.0
    #: Warm start (`ser.warmstart`): one trained model (a shipped model's name, a model
    #: folder or a bundle) whose weights and input normalisation the network starts from
    #: instead of random weights and statistics fitted on this run's clips. Same
    #: architecture, layer sizes and features; it must not have heard the run's validation
    #: or test clips, nor (unless the split is random) their speakers. Empty = from
    #: scratch; stored only when set.
    init: str = ""
    noise: bool = True  # the seed's noise-augmented copy of each training clip
    pitch: bool = False
    #: The pitch shift of each copy is drawn uniformly in ± this many semitones (the shifted
    #: voice's formants move with it). Stored when not 2, the range of the shipped models.
    pitch_range: float = 2.0
    stretch: bool = False
    #: The copy also goes through a random recording chain (EQ, band limits, room,
    #: companding, background noise; `ser.augment.channel_chain`).
    channel: bool = False
    copies: int = 1  # augmented copies of each training clip when a waveform transform is on
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    #: Arithmetic of the training steps: ``"auto"`` float16 autocast on CUDA (loss scaled)
    #: and float32 elsewhere; ``"bf16"`` bfloat16 autocast on any device (about twice as
    #: fast on CPUs with bfloat16 instructions, AVX512-BF16 or AMX; no loss scaling, as
    #: bfloat16 has float32's range); ``"fp32"`` float32 everywhere. Validation, testing
    #: and the saved weights stay float32. Stored only when not "auto".
    precision: str = "auto"
    threads: int = 0  # CPU threads; 0 → all cores
    log_every: int = 10  # steps between step lines in metrics.jsonl
    max_clips: int = 0  # use only this many clips (stratified sample) for quick trials; 0 = all
    half_bundle: bool = False  # store bundle weights as float16
    #: Distributed data-parallel training (`ser.distributed`): processes per node (one per
    #: GPU, or CPU processes), nodes, this node's rank and node 0's address. ``batch_size``
    #: stays the global batch, split among all processes.
    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = ""
    master_port: int = 29500
    name: str = ""
    #: Feature settings that differ from the seeds' FS1/FS2 (FeatureConfig field → value),
    #: e.g. ``{"n_mels": 64, "hop_length": 220}``. Empty = the seed config.
    features: dict = field(default_factory=dict)
    #: ``"fixed"``: every spectrogram cropped/padded to 216 frames (the seeds);
    #: ``"variable"``: each clip keeps its own frames, batches of similar lengths padded to
    #: their longest (architectures with ``variable_length`` only). Stored only when
    #: ``"variable"``, so configs and cards written before the option are unchanged.
    length: str = "fixed"
    #: Set by `ser.studies` on the runs it launches: ``{"name": study, "cell": {...}}``.
    #: Not a training option (two runs differing only here train the same way); stored only
    #: when set.
    study: dict = field(default_factory=dict)

    def model_kwargs(self) -> dict:
        return {k: v for k, v in (("activation", self.activation), ("width", self.width),
                                  ("dropout", self.dropout)) if v is not None}

    def feature_config(self) -> FeatureConfig:
        """The `FeatureConfig` this run extracts with (seed defaults + ``features``)."""
        unknown = set(self.features) - set(FeatureConfig.__dataclass_fields__) - {"version"}
        if unknown:
            raise ValueError(f"Unknown feature setting(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(FeatureConfig.__dataclass_fields__)}.")
        return FeatureConfig.from_dict(self.features)

    def augment(self) -> AugmentConfig:
        return AugmentConfig(noise=self.noise, pitch=self.pitch,
                             pitch_semitones=float(self.pitch_range), stretch=self.stretch,
                             channel=self.channel, seed=self.seed)

    def describe_augmentation(self) -> str:
        """The waveform copies in words, e.g. ``"white noise ×0.01, pitch ±2 st (×3)"``."""
        aug = self.augment()
        text = aug.describe()
        return f"{text} (×{self.copies})" if aug.enabled and self.copies > 1 else text

    def resolved_epochs(self) -> int:
        if self.readout_l2:
            return 1
        if self.epochs:
            return int(self.epochs)
        from ser.models import model_input_space  # torch, only when a model is involved

        return 30 if model_input_space(self.arch) == "fs1" else 20

    def check(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first option out of range; returns self."""
        if not 1 <= int(self.copies) <= MAX_COPIES:
            raise ValueError(f"copies must be 1–{MAX_COPIES}, not {self.copies}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {self.schedule!r}: use none, cosine or "
                             "plateau.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be {', '.join(PRECISIONS)}, not "
                             f"{self.precision!r}.")
        if self.length not in LENGTHS:
            raise ValueError(f"length must be fixed or variable, not {self.length!r}.")
        if self.batch_size < 1 or not self.lr > 0:
            raise ValueError("batch_size must be ≥ 1 and lr > 0.")
        if self.balance not in ("none", "corpus"):
            raise ValueError(f"balance must be none or corpus, not {self.balance!r}.")
        if self.speaker_norm not in ("none", "speaker"):
            raise ValueError(f"speaker_norm must be none or speaker, not {self.speaker_norm!r}.")
        if self.batches not in ("mixed", "speaker"):
            raise ValueError(f"batches must be mixed or speaker, not {self.batches!r}.")
        if self.batches == "speaker" and (self.balance != "none" or self.distributed
                                           or self.length != "fixed"):
            raise ValueError("One-speaker batches work with balance none, fixed-length input "
                             "and one process.")
        if not 0 < float(self.pitch_range) <= 12:
            raise ValueError("pitch_range (the copies' pitch shift, ± semitones) must be in "
                             f"(0, 12], not {self.pitch_range}.")
        if not 0 < float(self.vote_weight) <= 1:
            raise ValueError("vote_weight (how often a clip is drawn whose meant emotion the "
                             "raters did not hear, against one whose emotion they heard) must "
                             f"be in (0, 1]; 1 = off, not {self.vote_weight}.")
        if float(self.vote_weight) != 1 and self.batches == "speaker":
            raise ValueError("Vote weights set how often each clip is drawn; one-speaker "
                             "batches take every clip once per epoch, so they cannot be "
                             "combined.")
        if self.speaker_norm == "speaker" and not 1 <= int(self.enrol) <= 100:
            raise ValueError(f"enrol must be 1–100 clips per speaker, not {self.enrol}.")
        if self.split == "loco" and not self.test_corpus:
            raise ValueError("The leave-one-corpus-out split needs test_corpus (e.g. tess).")
        if not 1 <= int(self.nproc) <= 256 or not 1 <= int(self.nnodes) <= 1024:
            raise ValueError(f"nproc must be 1–256 and nnodes 1–1024, not {self.nproc} and "
                             f"{self.nnodes}.")
        if not 0 <= int(self.node_rank) < int(self.nnodes):
            raise ValueError(f"node_rank must be 0–{int(self.nnodes) - 1}, not "
                             f"{self.node_rank}.")
        if int(self.nnodes) > 1 and not self.master_addr:
            raise ValueError("Training on several nodes needs master_addr (--master-addr): "
                             "the address of node 0, reachable from every node.")
        if not 1 <= int(self.master_port) <= 65535:
            raise ValueError(f"master_port must be 1–65535, not {self.master_port}.")
        if self.world_size > 1 and self.batch_size < self.world_size:
            raise ValueError(f"batch_size {self.batch_size} is smaller than the "
                             f"{self.world_size} processes; each needs at least one clip "
                             "per batch.")
        fc = self.feature_config()
        if self.random_floor and not 10 <= float(self.random_floor) < fc.top_db:
            raise ValueError(f"random_floor must be 0 (off) or 10–{fc.top_db:g} dB below the "
                             f"peak (the feature floor), not {self.random_floor}.")
        if not 0 <= float(self.random_denoise) <= 1:
            raise ValueError(f"random_denoise is the share of training images denoised: "
                             f"0 (off) to 1, not {self.random_denoise}.")
        if not 0 <= float(self.mixstyle) <= 1:
            raise ValueError(f"mixstyle is the share of training batches whose images mix "
                             f"their band statistics: 0 (off) to 1, not {self.mixstyle}.")
        for option in ("random_floor", "random_denoise"):
            # the low-pass keeps images in dB re their peak, which is all these need
            if getattr(self, option) and (self.speaker_norm != "none"
                                          or fc.fs2_norm not in ("none", "lowpass")):
                raise ValueError(f"{option} works on globally standardised log-mel images; it "
                                 "cannot be combined with speaker normalisation or "
                                 "fs2_norm=utterance/denoise.")
        if self.readout_l2:
            self.check_readout()
        if not 0 <= int(self.swa) <= self.resolved_epochs():
            raise ValueError(f"swa (epochs averaged at the end) must be 0–"
                             f"{self.resolved_epochs()} (the run's epochs), not {self.swa}.")
        if self.adversary:
            self.check_adversary()
        if self.teachers:
            if not 0 < float(self.distill) <= 1:
                raise ValueError(f"distill (the teacher term's weight) must be in (0, 1], not "
                                 f"{self.distill}.")
            if self.distill_scope not in ("all", "heard"):
                raise ValueError("distill_scope must be all or heard, not "
                                 f"{self.distill_scope!r}.")
            if not 1 <= float(self.distill_temperature) <= 20:
                raise ValueError("distill_temperature must be 1–20, not "
                                 f"{self.distill_temperature}.")
            if self.speaker_norm != "none":
                raise ValueError("Distillation needs teachers that score each clip on its "
                                 "own; it cannot be combined with speaker normalisation.")
        self.input_space()
        return self

    def check_adversary(self) -> None:
        """Refuse a corpus adversary the run cannot have (see `ser.adversary`)."""
        if not 0 < float(self.adversary) <= 2:
            raise ValueError(f"adversary (the reversed gradient's weight) must be 0 (off) or "
                             f"in (0, 2], not {self.adversary}.")
        if self.distributed:
            raise ValueError("Corpus-adversarial training runs in one process; set nproc "
                             "and nnodes to 1.")
        corpora = [p for p in str(self.data or "").split(",") if p.strip()]
        needed = 3 if self.split == "loco" else 2
        if len(corpora) < needed:
            raise ValueError("Corpus-adversarial training needs a pool with clips of at "
                             f"least two corpora in training ({needed} corpora"
                             f"{', one left out' if needed == 3 else ''}); the data names "
                             f"{len(corpora)}.")

    def check_readout(self) -> None:
        """Refuse options a one-step read-out fit cannot honour (they change the objective
        or need epochs)."""
        if not 0 < float(self.readout_l2) <= 1e6:
            raise ValueError(f"readout_l2 (the read-out's L2 strength) must be 0 (off) or in "
                             f"(0, 1e6], not {self.readout_l2}.")
        from ser.models import model_class  # the registry imports torch: late

        if not model_class(self.arch).linear_readout:
            raise ValueError(f"{self.arch} is not one linear layer on its input, so its "
                             "read-out cannot be fitted in one step (readout_l2); voicelin "
                             "is.")
        clashes = [name for name, on in (
            ("init", self.init), ("label_smoothing", self.label_smoothing), ("mixup", self.mixup),
            ("teachers", self.teachers), ("adversary", self.adversary), ("swa", self.swa),
            ("spec_augment", self.spec_augment), ("freq_shift", self.freq_shift),
            ("time_shift", self.time_shift), ("random_floor", self.random_floor),
            ("random_denoise", self.random_denoise), ("mixstyle", self.mixstyle),
            ("batches=speaker",
                                                       self.batches == "speaker"),
            ("balance=corpus", self.balance == "corpus"),
            ("vote_weight", float(self.vote_weight) != 1),
            ("several processes", self.distributed)) if on]
        if clashes:
            raise ValueError("The one-step read-out fit (readout_l2) minimises the plain "
                             "cross-entropy over all training rows at once; it cannot be "
                             f"combined with {', '.join(clashes)}.")

    def teacher_names(self) -> list[str]:
        """The ``teachers`` entries, in order (empty when there is no teacher)."""
        return [t.strip() for t in self.teachers.split(",") if t.strip()]

    def input_space(self) -> str:
        """The feature space ``arch`` reads ("fs1", "fs2" or "fs1+fs2"); ``ValueError`` for
        an unknown architecture or an option that needs log-mel images on a model that
        reads only the FS1 vector."""
        from ser.models import model_input_space  # the registry imports torch: late

        space = model_input_space(self.arch)
        if self.speaker_norm == "speaker" and space not in ("fs2", "voice"):
            raise ValueError(f"Speaker normalisation works on log-mel (2D) and voice models "
                             f"only; {self.arch} reads {space.upper()}.")
        if self.random_floor and "fs2" not in space:
            raise ValueError(f"The random floor clips log-mel (2D) images; {self.arch} reads "
                             "the FS1 vector only.")
        if self.random_denoise and "fs2" not in space:
            raise ValueError(f"Random denoising works on log-mel (2D) images; {self.arch} "
                             "reads the FS1 vector only.")
        if self.mixstyle and "fs2" not in space:
            raise ValueError(f"MixStyle mixes the band statistics of log-mel (2D) images; "
                             f"{self.arch} reads {space.upper()}.")
        return space

    @property
    def world_size(self) -> int:
        """Processes training together (all nodes)."""
        return int(self.nproc) * int(self.nnodes)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def as_dict(self) -> dict:
        d = asdict(self)
        if d["length"] == "fixed":  # absent at its default (older configs and cards)
            del d["length"]
        if not d["study"]:
            del d["study"]
        if not d["channel"]:  # absent when off, so older configs compare equal
            del d["channel"]
        if not d["swa"]:
            del d["swa"]
        if not d["random_denoise"]:  # absent when off, so older configs compare equal
            del d["random_denoise"]
        if not d["mixstyle"]:
            del d["mixstyle"]
        if d["batches"] == "mixed":
            del d["batches"]
        if float(d["vote_weight"]) == 1:
            del d["vote_weight"]
        if float(d["pitch_range"]) == 2:  # absent at its default (older configs and cards)
            del d["pitch_range"]
        if not d["adversary"]:
            del d["adversary"]
        if not d["readout_l2"]:
            del d["readout_l2"]
        if not d["init"]:
            del d["init"]
        if d["precision"] == "auto":  # absent at its default (older configs and cards)
            del d["precision"]
        if not d["teachers"] or d["distill_scope"] == "all":
            del d["distill_scope"]
        if not d["teachers"]:
            for k in ("teachers", "distill", "distill_temperature"):
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = True) -> TrainConfig:
        """Build from a dict; ``strict`` refuses unknown keys (a typo in a config file),
        otherwise they are ignored (a card also records facts of the run itself)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown and strict:
            raise ValueError(f"Unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in d.items() if k in known})
