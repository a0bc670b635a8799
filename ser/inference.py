"""Prediction: a bundle turned into probabilities for any clip, and the whole chain the
Predict page and ``python -m ser predict`` share.

The clip goes through `ser.audio.load_audio` and the same feature code as training, with
the bundle's own feature config and normalisation.

`Predictor.predict_samples` scores a clip as a whole: a clip longer than the model's window
(216 frames ≈ 5 s) is scored in half-overlapping windows whose probabilities are averaged.

`analyse` is the chain for real recordings (silence, breaths, several utterances, several
emotions, minutes long):

1. `open_clip` decodes the upload once (level, clipping, spectrogram).
2. Silero VAD (`ser.segments.speech_segments`) cuts it into speech segments no longer than
   the models' window; non-speech is dropped. Without speech there is no verdict.
3. Every selected model scores every segment. A segment shorter than the window is padded
   by the feature code (FS2 with the -80 dB floor), as in training.
   With a voice enrolment (`ser.speakers.VoiceProfile`), a speaker-normalised model reads
   each segment relative to the voice's statistics, and every other model's log-probabilities
   are shifted by the voice's per-class offset (`Predictor.voice_offset`).
4. Each model's probabilities are calibrated with its own temperature (its card's
   ``calibration``; T = 1 and "uncalibrated" without one). The models' calibrated
   probabilities are averaged per segment; that average is calibrated again with the shipped
   ensemble's temperature only when the models are exactly the ensemble's members.
5. The clip's verdict is the duration-weighted mean over the speech segments. Below the
   validation-chosen confidence threshold the verdict is "uncertain" and the two leading
   emotions are given instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ser import config
from ser.audio import (
    AudioError,
    QualityReport,
    check_scorable,
    decode,
    info,
    load_audio,
    quality_report,
    resample,
)
from ser.audio import _too_long as _too_long_message
from ser.bundle import Bundle, BundleError, load_bundle
from ser.calibration import Calibration, apply_temperature, log_probs, prediction_arrays
from ser.card import Card
from ser.dataset import model_inputs, predict_proba, spaces_for
from ser.devices import inference_threads
from ser.features import LENGTH_KEY, clip_features, fs2, mel_power_chunked, stack_padded
from ser.segments import Segment, fixed_segments, slice_segments, speech_segments
from ser.speakers import (
    VoiceProfile,
    mean_log_probs,
    norm_space,
    shift_log_probs,
    usable,
    voice_offset,
)

#: The shortest part a long speech segment may be split into (seconds).
MIN_SPLIT_S = 1.0
#: Windows per forward pass when scoring segments.
BATCH = 32
#: The enrolled voice's share of the BatchNorm statistics when a model that was not trained
#: with speaker normalisation is adapted to a voice (`ser.training.adapt_batchnorm`), before
#: the per-class offset; 0 adapts by the offset alone. Chosen by a rule fixed before the
#: measurement (README, *Calibrating to a voice*): with 10 takes the general model's recipe,
#: leaving each corpus out, gains 2–4 points of UAR on every never-heard corpus over the
#: offset alone.
VOICE_BN_WEIGHT = 0.5
#: A recording with at least this many speech segments and seconds of speech gives its own
#: voice statistics to speaker-normalised models when no enrolment is given (see
#: `benchmarks/enrolment.py`: scores settle from about five to ten clips of a voice).
SELF_MIN_SEGMENTS = 5
SELF_MIN_SPEECH_S = 12.0


def refits_readout(card: Card) -> bool:
    """True for the models whose final layer is refitted to a voice's labelled takes
    (`Predictor.refitted`): the read-outs of the pretrained voice encoder. Chosen on
    validation speakers (README, *Labelled takes*): refitting the CNNs' final layer after
    their BatchNorm step lost 1–4 points of UAR there, so they keep the offset."""
    return card.input_space == "voice"


def stored_voice_reference(bundle_path: str | Path | None) -> np.ndarray | None:
    """`mean_log_probs` of the validation predictions stored beside a shipped bundle
    (``val_predictions.csv`` next to ``model.pt``): how the model answers voices it did not
    train on, an ordinary mix of emotions. None when there is no such table or it cannot
    be read (the voice offset then takes every class as equally likely)."""
    if bundle_path is None or Path(bundle_path).name != "model.pt":
        return None
    table = Path(bundle_path).parent / "val_predictions.csv"
    if not table.is_file():
        return None
    try:
        probs, _ = prediction_arrays(pd.read_csv(table))
    except (OSError, ValueError, pd.errors.ParserError):
        return None  # a damaged table: the uniform reference
    return mean_log_probs(probs) if len(probs) else None


class VoiceNeededError(ValueError):
    """A speaker-normalised model was asked to score a clip without a voice profile."""


@dataclass
class Prediction:
    """Probabilities for one clip (label order `ser.config.LABELS`) and per-window detail."""

    probs: np.ndarray  # (C,)
    window_probs: np.ndarray  # (W, C)
    window_starts_s: np.ndarray  # (W,)
    window_s: float

    @property
    def label(self) -> str:
        return config.LABELS[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probs))

    def as_dict(self) -> dict:
        return {"label": self.label, "confidence": self.confidence,
                "probs": dict(zip(config.LABELS, map(float, self.probs))),
                "windows": [{"start_s": float(s), "probs": dict(zip(config.LABELS,
                                                                    map(float, p)))}
                            for s, p in zip(self.window_starts_s, self.window_probs)]}


class Predictor:
    """Wraps a bundle (path, bytes or loaded `Bundle`) for prediction on CPU or GPU."""

    def __init__(self, source: str | Path | bytes | Bundle, device: str = "cpu"):
        self.bundle = source if isinstance(source, Bundle) else load_bundle(source)
        self.card: Card = self.bundle.card
        self.device = torch.device(device)
        self.model = self.bundle.model.to(self.device).eval()
        self.cfg = self.card.features
        self.space = self.card.input_space
        #: "variable": the model reads each clip (or segment) at its own length, up to
        #: `FeatureConfig.max_variable_frames`; longer audio goes in windows of that size.
        self.length = self.card.training.length
        self.norm = self.bundle.normalisation
        try:
            self.calibration: Calibration | None = (
                Calibration.from_dict(self.card.calibration) if self.card.calibration
                else None)
        except (TypeError, ValueError) as err:
            raise BundleError(f"The model's calibration record is damaged: {err}") from None

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def temperature(self) -> float:
        """The card's calibration temperature (1.0 for an uncalibrated model)."""
        return self.calibration.temperature if self.calibration else 1.0

    def windows(self, y: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Split samples into model-sized windows (hop = half a window). A variable-length
        model's window is `FeatureConfig.max_variable_frames` (≈ 20 s), so a clip of
        ordinary length is scored whole, at its own length."""
        frames = (self.cfg.max_variable_frames if self.length == "variable"
                  else self.cfg.fs2_frames)
        win = frames * self.cfg.hop_length
        hop = win // 2
        if len(y) <= win:
            return [y], np.zeros(1)
        starts = list(range(0, len(y) - win + 1, hop))
        if starts[-1] + win < len(y):  # cover the tail too
            starts.append(len(y) - win)
        return [y[s:s + win] for s in starts], np.asarray(starts) / self.cfg.sample_rate

    @property
    def needs_voice(self) -> bool:
        """True for a speaker-normalised model: it scores only with a `VoiceProfile`."""
        return self.card.speaker_normalised

    def check_voice(self, voice: VoiceProfile | None) -> None:
        """Raise `VoiceNeededError` when this model needs a voice profile and has none, or
        one too short to trust (`ser.speakers.usable`)."""
        if not self.needs_voice:
            return
        if voice is None or not voice.clips:
            raise VoiceNeededError(f"{self.name} is speaker-normalised: it needs a few clips "
                                   "of the same voice first (calibrate to the voice).")
        if not usable(voice):
            raise VoiceNeededError(
                f"{self.name} is speaker-normalised and the voice profile is too short "
                f"({voice.takes} take(s), {voice.seconds:.1f} s of speech): give at least "
                "3 takes or 8 s of speech.")

    @property
    def adapts_to_voice(self) -> bool:
        """True for a model trained without speaker normalisation: given a voice profile it
        is adapted to that voice by a per-class offset (`voice_offset`)."""
        return not self.needs_voice

    @property
    def voice_reference(self) -> np.ndarray | None:
        """The model's mean log-probability over its validation clips, from the
        ``val_predictions.csv`` stored beside a shipped ``model.pt`` (None without one: the
        offset then takes the six emotions as equally likely)."""
        if not hasattr(self, "_voice_reference"):
            self._voice_reference = stored_voice_reference(self.bundle.path)
        return self._voice_reference

    def _voice_key(self, kind: str) -> tuple:
        return (kind, self.card.extra.get("weights_sha256") or id(self.model), self.cfg.key(),
                self.length)

    @property
    def has_batchnorm(self) -> bool:
        """True when the network has BatchNorm layers (ser2d, sercrnn, serformer): those
        statistics are what `net` moves towards a voice."""
        return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in self.model.modules())

    def take_features(self, voice: VoiceProfile) -> dict[str, np.ndarray]:
        """The features of every model window of every take of ``voice``, stacked per space
        (variable-length FS2 padded to the longest window, frame counts kept); extracted
        once per set of takes and feature config (`net` and `voice_offset` both read them)."""
        return self.take_windows(voice)[0]

    def take_windows(self, voice: VoiceProfile) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """`take_features` and, for each of its windows, the take it comes from."""
        def compute() -> tuple[dict[str, np.ndarray], np.ndarray]:
            per_take = [self.window_features(y, voice.sample_rate)[0] for y in voice.clips]
            space = next(iter(per_take[0]))
            owner = np.concatenate([np.full(len(a[space]), i) for i, a in enumerate(per_take)])
            if LENGTH_KEY not in per_take[0]:
                return {s: np.concatenate([a[s] for a in per_take]) for s in per_take[0]}, owner
            images = [img[:, :n] for a in per_take for img, n in zip(a["fs2"], a[LENGTH_KEY])]
            out = {s: np.concatenate([a[s] for a in per_take]) for s in per_take[0]
                   if s not in ("fs2", LENGTH_KEY)}
            out["fs2"], out[LENGTH_KEY] = stack_padded(images, floor=-self.cfg.top_db)
            return out, owner

        return voice.remember(("take features", self.cfg.key(), spaces_for(self.space),
                               self.length), compute)

    def net(self, voice: VoiceProfile | None = None, refit: bool = True) -> torch.nn.Module:
        """The network that scores for ``voice``: the bundle's own, or, for a usable voice and
        a model with BatchNorm that adapts to voices, a copy whose BatchNorm statistics are
        moved towards those of the voice's takes (`VOICE_BN_WEIGHT`; cached in the profile
        per model and feature config); when the voice says which emotion enough takes
        meant (`VoiceProfile.labelled_ready`) and ``refit`` is on, that network with its final
        layer refitted to those takes (`refitted`)."""
        if refit and (labelled := self.refitted(voice)) is not None:
            return labelled
        return self._bn_net(voice)

    def refitted(self, voice: VoiceProfile | None) -> torch.nn.Module | None:
        """This model with its final layer refitted to the labelled takes of ``voice``
        (`ser.training.adapt_classifier`, `LABELLED_STRENGTH`), on top of the BatchNorm
        statistics of `net` (a speaker-normalised model reads the takes normalised by the
        voice). None without a usable voice with enough labelled takes, for a model that
        does not read the voice space (`refits_readout`), or for a model whose output is
        not its final linear layer's. Cached in the profile."""
        if (voice is None or not refits_readout(self.card) or not usable(voice)
                or not voice.labelled_ready):
            return None

        def compute() -> torch.nn.Module | None:
            try:
                return self._fit_takes(voice, voice.labelled)
            except ValueError:
                return None

        return voice.remember(self._voice_key("labelled"), compute)

    def _fit_takes(self, voice: VoiceProfile, takes: list[int]) -> torch.nn.Module:
        """`_bn_net` with its final layer refitted to the labelled takes ``takes`` (indices
        into the profile), every model window of them, normalised by the voice."""
        from ser.training import LABELLED_STRENGTH, adapt_classifier

        inputs, owner = self._take_inputs(voice)
        rows = np.flatnonzero(np.isin(owner, takes))
        labels = np.array([config.LABELS.index(voice.labels[t]) for t in owner[rows]])
        idx = torch.from_numpy(rows)
        return adapt_classifier(self._bn_net(voice), tuple(x[idx] for x in inputs), labels,
                                LABELLED_STRENGTH, self.device, BATCH)

    def _take_inputs(self, voice: VoiceProfile) -> tuple[tuple[torch.Tensor, ...], np.ndarray]:
        """The model inputs of every window of every take (normalised by the voice for a
        speaker-normalised model), and the take each window comes from."""
        feats, owner = self.take_windows(voice)
        return tuple(model_inputs(self._voice_normalised(feats, voice), self.space,
                                  self.norm)), owner

    def take_check(self, voice: VoiceProfile | None) -> tuple[int, int] | None:
        """How well the refitted read-out knows this voice, measured honestly: each labelled
        take in turn is scored by a read-out refitted to the *other* labelled takes (when
        those still cover two emotions; the voice's statistics, which hold no label, still
        come from every take). Returns ``(right, scored)``; None when this model
        is not refitted for ``voice`` (`refitted`). Cached in the profile."""
        if self.refitted(voice) is None:
            return None

        def compute() -> tuple[int, int]:
            inputs, owner = self._take_inputs(voice)
            right = scored = 0
            for t in voice.labelled:
                others = [u for u in voice.labelled if u != t]
                if len({voice.labels[u] for u in others}) < 2:
                    continue
                try:
                    model = self._fit_takes(voice, others)
                except ValueError:
                    continue
                held = torch.from_numpy(np.flatnonzero(owner == t))
                probs = predict_proba(model, tuple(x[held] for x in inputs), self.device)
                right += int(config.LABELS[int(probs.mean(axis=0).argmax())]
                             == voice.labels[t])
                scored += 1
            return right, scored

        return voice.remember(self._voice_key("take check"), compute)

    def _bn_net(self, voice: VoiceProfile | None) -> torch.nn.Module:
        if (voice is None or not self.adapts_to_voice or not VOICE_BN_WEIGHT
                or not usable(voice) or not self.has_batchnorm):
            return self.model
        def compute() -> torch.nn.Module:
            from ser.training import adapt_batchnorm

            inputs = model_inputs(self.take_features(voice), self.space, self.norm)
            return adapt_batchnorm(self.model, inputs, VOICE_BN_WEIGHT, self.device, BATCH)

        return voice.remember(self._voice_key("batchnorm"), compute)

    def voice_offset(self, voice: VoiceProfile) -> np.ndarray:
        """The per-class log offset that adapts this model to ``voice``: the answers of
        `net` (BatchNorm already moved towards the voice) on the voice's takes (every model
        window of every take), moved onto `voice_reference`. Cached in the profile (per
        model weights and feature config)."""
        if not usable(voice):
            raise VoiceNeededError(
                f"The voice profile is too short to adapt {self.name} to it "
                f"({voice.takes if voice else 0} take(s)): give at least 3 takes or 8 s of "
                "speech.")
        def compute() -> np.ndarray:
            lp = self._log_probs(self.take_features(voice), net=self._bn_net(voice))
            return voice_offset(np.exp(lp), self.voice_reference)

        return voice.remember(self._voice_key("offset"), compute)

    def adapt_log_probs(self, lp: np.ndarray, voice: VoiceProfile | None) -> np.ndarray:
        """Log-probabilities ``lp`` (rows) adapted to ``voice`` by `voice_offset`; unchanged
        without a voice, for a speaker-normalised model (normalised at its input) and when
        the model's read-out was refitted to the voice's labelled takes (`refitted`)."""
        if voice is None or not self.adapts_to_voice or self.refitted(voice) is not None:
            return lp
        return shift_log_probs(lp, self.voice_offset(voice))

    def adapt_probs(self, probs: np.ndarray, voice: VoiceProfile | None) -> np.ndarray:
        """`adapt_log_probs` for probabilities (rows)."""
        if voice is None or not self.adapts_to_voice or self.refitted(voice) is not None:
            return probs
        return np.exp(self.adapt_log_probs(np.log(np.clip(probs, 1e-12, None)), voice))

    def _voice_normalised(self, arrays: dict[str, np.ndarray],
                          voice: VoiceProfile | None) -> dict[str, np.ndarray]:
        """``arrays`` normalised by ``voice`` (speaker-normalised models): FS2 standardised,
        voice vectors centred."""
        if not self.needs_voice:
            return arrays
        self.check_voice(voice)
        space = norm_space(spaces_for(self.space))
        return {**arrays, space: voice.stats(self.cfg, space).apply(arrays[space])}

    def _log_probs(self, arrays: dict[str, np.ndarray],
                   progress: Callable[[float], None] | None = None,
                   voice: VoiceProfile | None = None,
                   net: torch.nn.Module | None = None, refit: bool = True) -> np.ndarray:
        """Log-softmax outputs ``(N, C)`` for stacked features, in batches: adapted to
        ``voice`` (`net`, then `voice_offset`) when one is given; ``net`` alone (no offset)
        scores with that network instead."""
        inputs = model_inputs(self._voice_normalised(arrays, voice), self.space, self.norm)
        model = net if net is not None else self.net(voice, refit)
        n = len(inputs[0])
        if self.length == "variable":  # each window at its own length
            with inference_threads(self.device):
                probs = predict_proba(model, inputs, self.device, BATCH)
            if progress:
                progress(1.0)
            return self.adapt_log_probs(np.log(np.clip(probs, 1e-12, None)).astype(np.float64),
                                       voice)
        out = []
        with torch.inference_mode(), inference_threads(self.device):
            for i in range(0, n, BATCH):
                xb = [x[i:i + BATCH].to(self.device) for x in inputs]
                out.append(torch.log_softmax(model(*xb).float(), dim=1).cpu().numpy())
                if progress:
                    progress(min(i + BATCH, n) / n)
        return self.adapt_log_probs(np.concatenate(out).astype(np.float64), voice)

    def window_features(self, y: np.ndarray, sr: int, *, features: dict | None = None
                        ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The features of every model window of ``y`` (mono, ``sr`` Hz) in this model's
        spaces, stacked per space, and the windows' start times (s): the bundle's feature
        config, before normalisation. ``features`` as in `predict_samples`."""
        if sr != self.cfg.sample_rate:
            y = resample(np.asarray(y, dtype=np.float32), sr, self.cfg.sample_rate)
        spaces = spaces_for(self.space)
        cache = features if features is not None else {}
        key = (self.cfg.key(), spaces, self.cfg.fs2_frames, self.cfg.hop_length, self.length)
        if key not in cache:
            chunks, starts = self.windows(np.asarray(y, dtype=np.float32))
            per_chunk = [clip_features(c, cfg=self.cfg, spaces=spaces, length=self.length)
                         for c in chunks]
            cache[key] = (_stack(per_chunk, spaces, self.cfg, self.length), starts)
        return cache[key]

    def inputs(self, arrays: dict[str, np.ndarray], *, voice: VoiceProfile | None = None
               ) -> list[torch.Tensor]:
        """The tensors the model takes for stacked ``arrays`` (`window_features`), in its
        argument order: the voice's statistics for a speaker-normalised model (else
        `VoiceNeededError`), then the bundle's normalisation, on the model's device. A
        variable-length model's windows come padded to the longest, with their frame
        counts (`ser.dataset.Inputs`); `predict_samples` scores each at its own length."""
        arrays = self._voice_normalised(arrays, voice)
        inputs = model_inputs(arrays, self.space, self.norm)
        if self.length == "variable":
            return inputs
        return [x.to(self.device) for x in inputs]

    def predict_samples(self, y: np.ndarray, sr: int, *, voice: VoiceProfile | None = None,
                        features: dict | None = None, refit: bool = True) -> Prediction:
        """Probabilities for mono float samples ``y`` at ``sr`` Hz (uncalibrated softmax).
        A speaker-normalised model needs the speaker's ``voice`` (else `VoiceNeededError`);
        any other model given a ``voice`` is adapted to it (`voice_offset`).

        ``features``: a dict shared by the predictors scoring the same ``y``; the windows'
        features are computed once per feature config and input space and reused.
        ``refit`` False keeps the trained read-out when ``voice`` has labelled takes."""
        stacked, starts = self.window_features(y, sr, features=features)
        inputs = self.inputs(stacked, voice=voice)
        model = self.net(voice, refit)
        if self.length == "variable":  # each window at its own length
            with inference_threads(self.device):
                probs = predict_proba(model, inputs, self.device, BATCH)
        else:
            with torch.inference_mode(), inference_threads(self.device):
                probs = torch.softmax(model(*inputs).float(), dim=1).cpu().numpy()
        probs = self.adapt_probs(probs, voice)
        window_s = self.cfg.window_seconds
        if self.length == "variable":  # the whole clip, or windows of the longest input
            window_s = (len(y) / self.cfg.sample_rate if len(starts) == 1 else
                        self.cfg.max_variable_frames * self.cfg.hop_length
                        / self.cfg.sample_rate)
        return Prediction(probs.mean(axis=0), probs, starts, window_s)

    def predict(self, source, *, voice: VoiceProfile | None = None) -> Prediction:
        """Probabilities for a path, bytes or file-like clip (raises `AudioError`)."""
        y, sr = load_audio(source, sr=self.cfg.sample_rate)
        return self.predict_samples(y, sr, voice=voice)

    def calibrated(self, prediction: Prediction) -> Prediction:
        """``prediction`` with the card's temperature applied to every window (then
        averaged again); unchanged for an uncalibrated model."""
        if self.calibration is None:
            return prediction
        w = apply_temperature(log_probs(prediction.window_probs), self.temperature)
        return Prediction(w.mean(axis=0), w, prediction.window_starts_s, prediction.window_s)

    def segment_probs(self, y: np.ndarray, sr: int, segments: Sequence[Segment], *,
                      features: dict | None = None,
                      progress: Callable[[float], None] | None = None,
                      voice: VoiceProfile | None = None, refit: bool = True
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of every segment of ``y`` (mono, ``sr`` Hz).

        A segment longer than the model's window is scored in half-overlapping windows
        whose probabilities are averaged; a shorter one is padded by the feature code.

        Parameters
        ----------
        features
            A dict shared by the predictors scoring the same clip and segments: features
            are computed once per feature config and input space and reused.
        progress
            Called with the fraction done (0–1).
        voice
            The speaker's `VoiceProfile`; required by a speaker-normalised model. Any other
            model given one is adapted to that voice (`voice_offset`).
        refit
            False keeps a speaker-normalised model's trained read-out even when ``voice``
            has labelled takes (`refitted`): normalised, not adapted.

        Returns
        -------
        raw, calibrated : np.ndarray, shape (segments, C)
            Softmax outputs, and the same after the card's temperature (identical for an
            uncalibrated model). Rows sum to 1.
        """
        if not len(segments):
            empty = np.zeros((0, config.N_CLASSES))
            return empty, empty.copy()
        self.check_voice(voice)  # fail before any work
        spaces = spaces_for(self.space)
        key = (self.cfg.key(), spaces, tuple((s.start_s, s.end_s) for s in segments),
               self.length)
        cache = features if features is not None else {}
        fresh = key not in cache
        if fresh:
            rate = self.cfg.sample_rate
            samples = (np.asarray(y, dtype=np.float32) if sr == rate
                       else resample(np.asarray(y, dtype=np.float32), sr, rate))
            chunks, owner = [], []
            for i, piece in enumerate(slice_segments(samples, rate, list(segments))):
                if not len(piece):  # a segment shorter than one sample: score silence
                    piece = np.zeros(self.cfg.hop_length, np.float32)
                parts, _ = self.windows(piece)
                chunks += parts
                owner += [i] * len(parts)
            feats = []
            for j, c in enumerate(chunks):
                feats.append(clip_features(c, cfg=self.cfg, spaces=spaces,
                                           length=self.length))
                if progress:
                    progress(0.8 * (j + 1) / len(chunks))
            cache[key] = (_stack(feats, spaces, self.cfg, self.length), np.asarray(owner))
        arrays, owner = cache[key]
        start = 0.8 if fresh else 0.0
        lp = self._log_probs(arrays, progress and (lambda f: progress(start + (1 - start) * f)),
                             voice=voice, refit=refit)
        raw_w = np.exp(lp)
        raw_w /= raw_w.sum(axis=1, keepdims=True)
        cal_w = apply_temperature(lp, self.temperature) if self.calibration else raw_w
        counts = np.bincount(owner, minlength=len(segments))[:, None]
        raw = np.zeros((len(segments), raw_w.shape[1]))
        cal = np.zeros_like(raw)
        np.add.at(raw, owner, raw_w)
        np.add.at(cal, owner, cal_w)
        return raw / counts, cal / counts


def _stack(per_clip: list[dict], spaces, cfg, length: str) -> dict[str, np.ndarray]:
    """Stack per-window features; variable-length FS2 is padded to the longest window and
    its frame counts kept (`ser.features.LENGTH_KEY`), so each is scored at its own length."""
    if length != "variable" or "fs2" not in spaces:
        return {s: np.stack([f[s] for f in per_clip]) for s in spaces}
    out = {s: np.stack([f[s] for f in per_clip]) for s in spaces if s != "fs2"}
    out["fs2"], out[LENGTH_KEY] = stack_padded([f["fs2"] for f in per_clip],
                                               floor=-cfg.top_db)
    return out


def ensemble(predictions: list[Prediction], weights: list[float] | None = None) -> np.ndarray:
    """Weighted mean of several models' probabilities (equal weights by default)."""
    p = np.stack([x.probs for x in predictions])
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    return (p * w[:, None]).sum(0) / w.sum()


def agreement(predictions: list[Prediction]) -> float:
    """Share of models whose top label equals the most common top label."""
    if not predictions:
        return 0.0
    labels = [p.label for p in predictions]
    return max(labels.count(lab) for lab in set(labels)) / len(labels)


# ------------------------------------------------------------------------ the Predict chain

@dataclass
class Clip:
    """A decoded upload: the samples at their own rate, the models' rate, and what the page
    shows about it before any model runs."""

    name: str
    y: np.ndarray
    sr: int
    channels: int
    quality: QualityReport
    y_model: np.ndarray  # at config.SAMPLE_RATE
    mel_db: np.ndarray  # whole-clip log-mel (n_mels, frames)

    @property
    def duration_s(self) -> float:
        return len(self.y) / self.sr

    def mel_display(self, max_frames: int = 1500) -> tuple[np.ndarray, int]:
        """The log-mel image thinned in time for drawing (a browser chokes on a
        10-minute spectrogram at full resolution): ``(image, hop in samples)``. Each shown
        column is the loudest of the frames it stands for, so short events stay visible."""
        n = self.mel_db.shape[1]
        k = max(1, -(-n // max_frames))
        if k == 1:
            return self.mel_db, config.HOP_LENGTH
        pad = -n % k
        m = np.pad(self.mel_db, ((0, 0), (0, pad)), constant_values=-config.FS2_TOP_DB)
        return m.reshape(m.shape[0], -1, k).max(axis=2), config.HOP_LENGTH * k

    def samples(self, segment: Segment) -> np.ndarray:
        """The segment's samples at the clip's own rate (for a player)."""
        return slice_segments(self.y, self.sr, [segment])[0]


def open_clip(source, name: str = "clip", *,
              max_seconds: float = config.MAX_AUDIO_SECONDS) -> Clip:
    """Decode ``source`` once and check it (raises `ser.audio.AudioError` naming the
    problem: empty, not audio, truncated, longer than ``max_seconds`` ...). The length is
    checked from the header before decoding, and the whole-clip spectrogram is computed in
    chunks, so memory stays bounded for the longest clip accepted."""
    meta = info(source)
    if meta.duration_s > max_seconds:
        raise AudioError(_too_long_message(name, meta.duration_s, max_seconds))
    y, sr, notes = decode(source, sr=None, max_seconds=max_seconds)
    check_scorable(y, sr, name)
    y_model = resample(y, sr, config.SAMPLE_RATE)
    return Clip(name, y, sr, meta.channels, quality_report(y, sr, meta.channels, notes),
                y_model, fs2(mel=mel_power_chunked(y_model), frames=0))


@dataclass
class ScoredModel:
    """One model's view of the segments of a clip."""

    name: str
    card: Card
    calibration: Calibration | None
    raw: np.ndarray  # (segments, C) softmax outputs
    probs: np.ndarray  # (segments, C) after the model's temperature (= raw if uncalibrated)

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration else 1.0


def _top(p: np.ndarray, k: int = 2) -> list[tuple[str, float]]:
    order = np.argsort(-p, kind="stable")[:k]
    return [(config.LABELS[i], float(p[i])) for i in order]


def _majority(labels: list[str]) -> float:
    return max(Counter(labels).values()) / len(labels) if labels else 0.0


@dataclass
class ClipAnalysis:
    """Everything the Predict page and the CLI report about one clip.

    ``probs`` holds the combined, calibrated probabilities of every segment (the models'
    calibrated average, with the ensemble's temperature when it applies); the clip-level
    figures weight the segments by duration.
    """

    name: str
    duration_s: float
    segments: list[Segment]
    #: True: speech segments found by voice activity detection; False: the whole clip in
    #: equal parts, silence included.
    segmented: bool
    models: list[ScoredModel]
    probs: np.ndarray  # (segments, C)
    #: Calibrated confidence below which a verdict is "uncertain" (None: no threshold).
    threshold: float | None
    #: Where the threshold and the combined calibration come from, in words.
    calibration_note: str
    ensemble_calibration: Calibration | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: Where speaker-normalised models took the voice statistics from: "enrolment", "the
    #: recording itself", or "" (none used; such models were skipped, see ``skipped``).
    voice_source: str = ""
    #: Speaker-normalised models left out for want of a voice profile.
    skipped: list[str] = field(default_factory=list)
    #: Models adapted to the enrolled voice by a per-class offset (`Predictor.voice_offset`):
    #: every model that is not speaker-normalised, when an enrolment was given and
    #: ``adapt`` was on.
    adapted: list[str] = field(default_factory=list)
    #: Models whose final layer was refitted to the enrolled voice's labelled takes
    #: (`Predictor.refitted`; instead of the offset for the models in ``adapted``).
    refitted: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ the clip
    @property
    def speech(self) -> bool:
        return bool(self.segments)

    @property
    def ok(self) -> bool:
        """A verdict exists: there are segments and at least one model scored them."""
        return bool(self.segments) and bool(self.models)

    @property
    def message(self) -> str | None:
        """Why there is no verdict (None when there is one)."""
        if not self.segments:
            if self.segmented:
                return (f"No speech found in {self.name}: the voice activity detector "
                        "heard no speech in it, so there is nothing to judge. Silence, "
                        "noise and music are not given an emotion.")
            return f"{self.name} holds no audio to score."
        if not self.models:
            if self.skipped:
                return ("The selected models are speaker-normalised and need a few clips of "
                        "this voice first: calibrate to the voice, or give a longer "
                        f"recording (at least {SELF_MIN_SEGMENTS} speech segments, "
                        f"{SELF_MIN_SPEECH_S:.0f} s of speech).")
            return "None of the selected models could be loaded or run."
        return None

    @property
    def speech_s(self) -> float:
        return float(sum(s.duration_s for s in self.segments))

    @property
    def weights(self) -> np.ndarray:
        """Each segment's share of the scored time (sums to 1)."""
        d = np.array([s.duration_s for s in self.segments], dtype=np.float64)
        return d / d.sum() if d.sum() > 0 else np.full(len(d), 1 / max(len(d), 1))

    @property
    def clip_probs(self) -> np.ndarray | None:
        """Duration-weighted mean of the segments' combined probabilities."""
        return self.weights @ self.probs if self.ok else None

    @property
    def label(self) -> str | None:
        """The leading emotion of the clip (even when uncertain; see `verdict`)."""
        p = self.clip_probs
        return None if p is None else config.LABELS[int(np.argmax(p))]

    @property
    def confidence(self) -> float | None:
        p = self.clip_probs
        return None if p is None else float(np.max(p))

    @property
    def uncertain(self) -> bool:
        return (self.ok and self.threshold is not None
                and self.confidence < self.threshold)

    @property
    def verdict(self) -> str | None:
        """The leading emotion, "uncertain" below the threshold, None without a result."""
        if not self.ok:
            return None
        return "uncertain" if self.uncertain else self.label

    @property
    def top2(self) -> list[tuple[str, float]]:
        p = self.clip_probs
        return [] if p is None else _top(p, 2)

    @property
    def calibrated(self) -> bool:
        """Every model has a calibration (then the probabilities are calibrated ones)."""
        return bool(self.models) and all(m.calibrated for m in self.models)

    @property
    def uncalibrated_models(self) -> list[str]:
        return [m.name for m in self.models if not m.calibrated]

    # ------------------------------------------------------------------ the models
    def model_probs(self) -> np.ndarray:
        """Each model's duration-weighted calibrated probabilities ``(models, C)``."""
        if not self.ok:
            return np.zeros((len(self.models), config.N_CLASSES))
        return np.stack([self.weights @ m.probs for m in self.models])

    @property
    def model_labels(self) -> list[str]:
        return [config.LABELS[int(i)] for i in self.model_probs().argmax(axis=1)]

    @property
    def votes(self) -> dict[str, int]:
        """How many models name each emotion for the clip, most votes first."""
        return dict(Counter(self.model_labels).most_common())

    @property
    def agreement(self) -> float:
        """Share of models whose clip label is the most common one."""
        return _majority(self.model_labels)

    @property
    def disagree(self) -> bool:
        """The models do not all name the same emotion for the clip."""
        return len(self.votes) > 1

    def segment_agreement(self) -> np.ndarray:
        """Per segment, the share of models naming its most common label."""
        if not self.ok:
            return np.zeros(len(self.segments))
        labels = np.stack([m.probs.argmax(axis=1) for m in self.models])  # (M, S)
        return np.array([_majority(list(col)) for col in labels.T])

    def segment_uncertain(self) -> np.ndarray:
        if not self.ok or self.threshold is None:
            return np.zeros(len(self.segments), dtype=bool)
        return self.probs.max(axis=1) < self.threshold

    # ------------------------------------------------------------------ tables
    def table(self) -> pd.DataFrame:
        """The emotion timeline: one row per segment (the CSV download)."""
        cols = ["segment", "start_s", "end_s", "duration_s", "emotion", "confidence",
                "uncertain", "runner_up", "runner_up_confidence", "agreement",
                *[f"p_{lab}" for lab in config.LABELS]]
        if not self.ok:
            return pd.DataFrame(columns=cols)
        unsure, agree = self.segment_uncertain(), self.segment_agreement()
        rows = []
        for i, (seg, p) in enumerate(zip(self.segments, self.probs)):
            (first, p1), (second, p2) = _top(p, 2)
            rows.append({"segment": i + 1, "start_s": round(seg.start_s, 3),
                         "end_s": round(seg.end_s, 3), "duration_s": round(seg.duration_s, 3),
                         "emotion": first, "confidence": round(p1, 4),
                         "uncertain": bool(unsure[i]), "runner_up": second,
                         "runner_up_confidence": round(p2, 4),
                         "agreement": round(float(agree[i]), 3),
                         **{f"p_{lab}": round(float(v), 4)
                            for lab, v in zip(config.LABELS, p)}})
        return pd.DataFrame(rows, columns=cols)

    def model_table(self) -> pd.DataFrame:
        """One row per model: its clip-level calibrated probabilities and temperature."""
        rows = []
        for m, p in zip(self.models, self.model_probs()):
            rows.append({"model": m.name, "prediction": config.LABELS[int(np.argmax(p))],
                         "confidence": round(float(np.max(p)), 3),
                         "temperature": round(m.temperature, 3) if m.calibrated else None,
                         "calibrated": m.calibrated,
                         **{lab: round(float(v), 3) for lab, v in zip(config.LABELS, p)}})
        return pd.DataFrame(rows)

    def as_dict(self) -> dict:
        """JSON-ready summary (the CLI's ``--json``)."""
        out = {"clip": self.name, "duration_s": round(self.duration_s, 3),
               "speech": self.speech, "segmented": self.segmented,
               "models": [m.name for m in self.models],
               "errors": [{"model": n, "error": e} for n, e in self.errors],
               "voice": self.voice_source or None, "skipped": self.skipped,
               "adapted": self.adapted}
        if not self.ok:
            return {**out, "verdict": None, "message": self.message}
        return {**out, "speech_s": round(self.speech_s, 3), "verdict": self.verdict,
                "label": self.label, "confidence": self.confidence,
                "uncertain": self.uncertain, "threshold": self.threshold,
                "top2": [{"emotion": lab, "probability": p} for lab, p in self.top2],
                "probs": dict(zip(config.LABELS, map(float, self.clip_probs))),
                "agreement": self.agreement, "votes": self.votes,
                "calibrated": self.calibrated, "calibration": self.calibration_note,
                "temperatures": {m.name: (m.temperature if m.calibrated else None)
                                 for m in self.models},
                "segments": self.table().to_dict(orient="records")}


PredictorSource = Predictor | tuple[str, Callable[[], Predictor]]


def _load(predictors: Sequence[PredictorSource]
          ) -> tuple[list[tuple[str, Predictor]], list[tuple[str, str]]]:
    loaded, errors = [], []
    for item in predictors:
        if isinstance(item, Predictor):
            loaded.append((item.name, item))
            continue
        name, get = item
        try:
            loaded.append((name, get()))
        except BundleError as err:
            errors.append((name, str(err)))
    return loaded, errors


def _combined_calibration(models: list[ScoredModel], ensemble
                          ) -> tuple[Calibration | None, float | None, str]:
    """The ensemble calibration that applies to these models (if any), the threshold and
    a sentence saying where both come from."""
    names = sorted(m.name for m in models)
    record = getattr(ensemble, "calibration", None) if ensemble is not None else None
    if len(models) > 1 and record and names == sorted(ensemble.members):
        cal = Calibration.from_dict(record)
        return cal, cal.threshold, (
            f"the shipped ensemble's calibration (T = {cal.temperature:.2f} on the average "
            f"of its {len(models)} calibrated members; threshold {cal.threshold:.1%}, "
            "chosen on validation data)")
    cals = [m.calibration for m in models if m.calibration is not None]
    if len(models) == 1:
        if cals:
            c = cals[0]
            return None, c.threshold, (f"calibrated on validation data (T = "
                                       f"{c.temperature:.2f}; threshold {c.threshold:.1%})")
        return None, None, ("uncalibrated: raw softmax outputs, which usually overstate "
                            "confidence; no 'uncertain' threshold")
    if not cals:
        return None, None, ("uncalibrated models: raw softmax outputs averaged; no "
                            "'uncertain' threshold")
    thr = float(np.mean([c.threshold for c in cals]))
    note = (f"each model's own temperature; this combination was not calibrated as a whole, "
            f"so the threshold ({thr:.1%}) is the mean of the models' own thresholds")
    if len(cals) < len(models):
        note += f" ({len(models) - len(cals)} model(s) uncalibrated)"
    return None, thr, note


def self_profile(clip: Clip, segs: Sequence[Segment]) -> VoiceProfile | None:
    """The voice statistics a long recording supplies itself: its speech segments, when
    there are at least `SELF_MIN_SEGMENTS` of them and `SELF_MIN_SPEECH_S` seconds."""
    speech = sum(s.duration_s for s in segs)
    if len(segs) < SELF_MIN_SEGMENTS or speech < SELF_MIN_SPEECH_S:
        return None
    profile = VoiceProfile(sample_rate=config.SAMPLE_RATE)
    for piece in slice_segments(clip.y_model, config.SAMPLE_RATE, list(segs)):
        if len(piece):
            profile.clips.append(np.asarray(piece, dtype=np.float32))
    return profile if profile.clips else None


def analyse(clip: Clip, predictors: Sequence[PredictorSource], *, segments: bool = True,
            ensemble=None, progress: Callable[[float, str], None] | None = None,
            vad: dict | None = None, voice: VoiceProfile | None = None,
            adapt: bool = True) -> ClipAnalysis:
    """Run the whole Predict chain on ``clip`` (see the module docstring).

    Parameters
    ----------
    clip
        From `open_clip`.
    predictors
        `Predictor` objects, or ``(name, loader)`` pairs whose loader returns one; a model
        that cannot be loaded (`BundleError`) is reported in ``errors``, the others run.
    segments
        True: score only the speech Silero VAD finds. False: score the whole clip, cut into
        equal parts no longer than the models' window.
    ensemble
        The shipped `ser.ensemble.Ensemble` (or None). Its calibration is applied to the
        models' average only when the loaded models are exactly its members.
    progress
        ``progress(fraction, text)``, e.g. a Streamlit progress bar's ``progress``.
    vad
        Extra keyword arguments for `ser.segments.speech_segments`.
    voice
        The speaker's enrolment (`VoiceProfile`) for speaker-normalised models. Without it
        a recording long enough to supply its own statistics (`self_profile`) does;
        otherwise speaker-normalised models are skipped (listed in ``skipped``).
    adapt
        With an enrolment (``voice``, `usable`), also adapt every model that is not
        speaker-normalised to that voice (`Predictor.voice_offset`). A recording's own
        statistics never adapt those models: a long take in one mood would cancel its mood.

    Raises
    ------
    ser.segments.SegmentationError
        If ``segments`` and the voice activity detector cannot be loaded.
    """
    def report(fraction: float, text: str) -> None:
        if progress:
            progress(float(min(max(fraction, 0.0), 1.0)), text)

    report(0.0, "Loading models…")
    loaded, errors = _load(predictors)
    window = min((p.cfg.window_seconds for _, p in loaded),
                 default=config.FS2_FRAMES * config.HOP_LENGTH / config.SAMPLE_RATE)
    if segments:
        report(0.02, "Finding speech…")
        segs = speech_segments(clip.y, clip.sr, **{
            "max_segment_s": window, "min_segment_s": min(MIN_SPLIT_S, window / 2),
            **(vad or {})})
    else:
        segs = fixed_segments(clip.duration_s, window)

    voice_source, skipped = "", []
    enrolled = voice if usable(voice) else None
    norm_voice = enrolled
    if any(p.needs_voice for _, p in loaded):
        if enrolled is not None:
            voice_source = "enrolment"
        elif segs and (norm_voice := self_profile(clip, segs)) is not None:
            voice_source = "the recording itself"
        else:
            skipped = [name for name, p in loaded if p.needs_voice]
            loaded = [(name, p) for name, p in loaded if not p.needs_voice]
    adapt_voice = enrolled if adapt else None

    def result(models: list[ScoredModel], probs: np.ndarray, cal=None, thr=None,
               note: str = "") -> ClipAnalysis:
        adapted = ([m.name for m in models if not m.card.speaker_normalised]
                   if adapt_voice is not None else [])
        refitted = ([m.name for m in models if by_name[m.name].refitted(adapt_voice)
                     is not None] if adapt_voice is not None else [])
        return ClipAnalysis(clip.name, clip.duration_s, segs, segments, models, probs, thr,
                            note, cal, errors, voice_source, skipped, adapted, refitted)

    by_name = dict(loaded)

    if not segs or not loaded:
        report(1.0, "Done")
        return result([], np.zeros((len(segs), config.N_CLASSES)))

    shared: dict = {}
    scored = []
    for i, (name, p) in enumerate(loaded):
        text = f"Scoring {len(segs)} segment{'s' * (len(segs) > 1)} with {name} " \
               f"({i + 1}/{len(loaded)})"
        try:
            raw, cal = p.segment_probs(
                clip.y_model, config.SAMPLE_RATE, segs, features=shared,
                voice=norm_voice if p.needs_voice else adapt_voice, refit=adapt,
                progress=lambda f, i=i, text=text: report(
                    0.05 + 0.95 * (i + f) / len(loaded), text))
        except (RuntimeError, ValueError) as err:  # e.g. weights that do not fit the input
            errors.append((name, f"could not score the clip: {err}"))
            continue
        scored.append(ScoredModel(name, p.card, p.calibration, raw, cal))
    if not scored:
        report(1.0, "Done")
        return result([], np.zeros((len(segs), config.N_CLASSES)))
    ens_cal, threshold, note = _combined_calibration(scored, ensemble)
    combined = np.mean([m.probs for m in scored], axis=0)
    if ens_cal is not None:
        combined = apply_temperature(log_probs(combined), ens_cal.temperature)
    report(1.0, "Done")
    return result(scored, combined, ens_cal, threshold, note)
