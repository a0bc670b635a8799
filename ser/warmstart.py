"""Warm start: a run whose network starts from a trained model instead of random weights.

``TrainConfig.init`` names one trained model (a shipped model's name, a model folder or a
``.pt`` bundle). The run then begins with that model's weights, BatchNorm statistics
included, and standardises its inputs with that model's normalisation statistics rather
than fitting new ones on its own training clips: the first layer's weights were learnt on
inputs standardised that way, so re-standardising would move every input under them.
Everything else (data, split, schedule, augmentation, teachers) is the run's own. Typical
uses: fine-tune a shipped model on your own recordings, or carry a model trained on one
corpus on to a pool of corpora.

The starting model must fit the run exactly: same architecture and layer sizes, same
feature settings, the same speaker normalisation and input length. It must not have
trained on any clip of the run's validation or test part (the check `ser.distill` makes for
teachers: a start that had heard a test clip would carry its label into the run's test
score) and, unless the run's split is random, on any of their speakers (a model that heard
a voice cannot begin a speaker-independent test of that voice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ser.bundle import Bundle


def check_init(cfg):
    """``cfg``, after loading its starting model and checking it against the split the run
    will train on (what `load_init` does in training), so a start that cannot work is
    refused before a run is queued."""
    if cfg.init:
        from ser.dataset import select

        load_init(cfg, select(cfg), cfg.feature_config())
    return cfg


def load_init(cfg, selection, features) -> Bundle:
    """The model ``cfg.init`` names, loaded (``weights_only``, `ser.bundle.load_bundle`) and
    checked against the run: ``ValueError`` naming the mismatch otherwise."""
    from ser.bundle import load_bundle
    from ser.names import bundle_files

    paths = bundle_files(cfg.init)
    if len(paths) != 1:
        raise ValueError(f"init {cfg.init!r} names " + (
            "no model" if not paths else f"{len(paths)} models") + ": give one shipped "
            "model's name, a model folder or a bundle (.pt) to start from.")
    bundle = load_bundle(paths[0])
    card, name = bundle.card, cfg.init
    if card.arch != cfg.arch:
        raise ValueError(f"The starting model {name} is a {card.arch}; this run trains a "
                         f"{cfg.arch}. Choose the same architecture (or no starting model).")
    if card.features != features:
        raise ValueError(f"The starting model {name} was trained on other features than "
                         "this run (feature settings differ); it must share the run's.")
    if card.speaker_normalised != (cfg.speaker_norm == "speaker"):
        raise ValueError(f"The starting model {name} reads " + (
            "speaker-normalised inputs and this run does not" if card.speaker_normalised
            else "inputs without speaker normalisation and this run normalises by speaker")
            + "; both must read the same inputs.")
    if card.training.length != cfg.length:
        raise ValueError(f"The starting model {name} reads {card.training.length}-length "
                         f"spectrograms; this run reads {cfg.length}-length ones.")
    differ = _kwargs_mismatch(card.model_kwargs, cfg, features)
    if differ:
        raise ValueError(f"The starting model {name} is built differently from this run's "
                         f"{cfg.arch} ({differ}); set the same width and activation.")
    leak = _heard(bundle, cfg, selection)
    if leak:
        raise ValueError(f"The starting model {name} trained on {leak} of this run's "
                         "validation or test part, so the run's scores would not be on "
                         "unheard " + ("clips" if cfg.split == "random" else "voices")
                         + ". Start from a model trained on the same split, or on other "
                         "corpora.")
    return bundle


def _heard(bundle: Bundle, cfg, selection) -> str:
    """What of the run's validation and test part the starting model trained on ("3
    clip(s)", "2 speaker(s)"; empty when nothing). Clips are compared as `ser.distill`
    compares a teacher's, when its split can be rebuilt here. Speakers are compared from
    its card (corpus and speaker id) unless the run's own split shares speakers (random),
    so a model that heard a voice cannot start a speaker-independent test on that voice;
    they are also the only check when its corpus is not on this machine."""
    from ser.distill import TrainingClipsUnknownError, pooled_clips, teacher_training_clips
    from ser.splits import corpus_ids

    try:
        taught = teacher_training_clips(bundle, selection)
    except TrainingClipsUnknownError:  # its corpus is not here: judged by its speakers
        taught = None
    if taught is not None:
        n = len(taught & pooled_clips(selection, ("val", "test")))
        if n:
            return f"{n} clip(s)"
        if cfg.split == "random":
            return ""
    split = bundle.card.split
    corpora = list(split.get("corpora") or _corpus_keys(bundle.card))
    heard = {_voice(str(s), corpora) for s in split.get("speakers", {}).get("train", [])}
    anywhere = {spk for corpus, spk in heard if corpus == "*"}
    manifest = selection.manifest
    corp = corpus_ids(manifest)
    spk = manifest["speaker"].astype(str).to_numpy()
    held = {_voice(spk[r], [corp[r]]) for r in [*selection.split.val, *selection.split.test]}
    n = sum(1 for voice in held if voice in heard or voice[1] in anywhere)
    return f"{n} speaker(s)" if n else ""


def _corpus_keys(card) -> list[str]:
    """The corpus key of a card that predates ``split.corpora`` (a single corpus, named in
    ``data.corpus``); empty when the name is not a known corpus."""
    from ser.corpora import list_corpora

    keys = {spec.name: spec.key for spec in list_corpora()}
    name = card.data.get("corpus")
    return [keys[name]] if name in keys else []


def _voice(speaker: str, corpora: list[str]) -> tuple[str, str]:
    """``(corpus key, speaker id)`` of a speaker named as a pool names it
    (``crema-d:1001``) or, in a single corpus, bare (``1001``, the corpus being its one
    corpus). ``"*"`` stands for a corpus that cannot be told: the id then matches in every
    corpus, so an unknown start is judged strictly."""
    head, sep, tail = speaker.partition(":")
    if sep and (head in corpora or len(corpora) != 1):
        return head, tail
    return (corpora[0] if len(corpora) == 1 else "*"), speaker


def _kwargs_mismatch(start: dict, cfg, features) -> str:
    """How the starting model's constructor arguments differ from the network ``cfg``
    builds (empty when they match). Dropout may differ: it holds no weights. An older card
    that does not record the input sizes is checked on its features instead."""
    from ser.models import describe

    run = describe(cfg.arch, **cfg.model_kwargs(), **features.model_dims())["kwargs"]
    return ", ".join(f"{k} {start.get(k)!r} against {run.get(k)!r}"
                     for k in sorted(set(start) & set(run))
                     if k != "dropout" and start.get(k) != run.get(k))


def attach_init(data, cfg):
    """Give ``data`` (a `ser.dataset.Prepared` of ``cfg``) its starting weights and
    standardise its inputs with the starting model's statistics instead of the ones
    `ser.dataset.prepare` fitted; return it. Each standardised value x becomes
    ``(x·σ_fit + μ_fit − μ_start) / σ_start``, in place, per band (FS2) or dimension."""
    if not cfg.init:
        return data
    import numpy as np
    import torch

    bundle = load_init(cfg, data.selection, data.features)
    start = bundle.normalisation
    missing = [s for s in data.spaces if s not in start]
    if missing:
        raise ValueError(f"The starting model {cfg.init} has no normalisation statistics "
                         f"for {', '.join(missing)}; it cannot start this run.")
    new = {}
    for i, space in enumerate(data.spaces):
        fit, own = data.normalisation[space], start[space]
        scale = np.asarray(fit["std"], np.float64) / np.asarray(own["std"], np.float64)
        shift = (np.asarray(fit["mean"], np.float64) - own["mean"]) / own["std"]
        shape = (-1, 1) if space == "fs2" else (-1,)  # FS2: per band, over its frames
        scale_t = torch.from_numpy(scale.astype(np.float32).reshape(shape))
        shift_t = torch.from_numpy(shift.astype(np.float32).reshape(shape))
        for inputs in data.inputs.values():
            inputs[i].mul_(scale_t).add_(shift_t)
        new[space] = {k: np.asarray(v, dtype=np.float32) for k, v in own.items()}
    data.normalisation = {**data.normalisation, **new}
    data.init_state = init_state(bundle)
    data.init_from = {"model": bundle.name,
                      "weights_sha256": bundle.card.extra.get("weights_sha256", "")}
    return data


def init_state(bundle: Bundle) -> dict:
    """The starting weights as float32 CPU tensors (a half-precision bundle is widened)."""
    return {k: (v.float() if v.is_floating_point() else v).detach().clone()
            for k, v in bundle.model.state_dict().items()}
