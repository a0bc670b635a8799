"""The "inside the models" views as Streamlit pieces, shared by the Architectures, Predict and
Results pages: cached calls into `ser.insight`, and the panels that draw them.

Results are cached per model file (path and modification time), clip (a hash of its
samples) and view settings, so moving a slider recomputes one view, never the others.
Every failure a visitor can cause becomes a message, never a traceback.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import streamlit as st

from ser import config
from ser import plots_insight as pi
from ser.insight import IG_STEPS

#: Session key the Results page sets to open a clip here: {"clip": name, "model": name}.
REQUEST = "insight_request"


def samples_hash(y: np.ndarray, sr: int) -> str:
    return hashlib.sha1(np.ascontiguousarray(y, dtype=np.float32).tobytes()
                        + str(sr).encode()).hexdigest()


@st.cache_resource(show_spinner=False, max_entries=8)
def _inspector(path: str, mtime: float):
    from ser.insight import Inspector
    from ui.state import get_predictor

    return Inspector(get_predictor(path))


def inspector(bundle: str | Path):
    return _inspector(str(bundle), Path(bundle).stat().st_mtime)


@st.cache_data(show_spinner=False, max_entries=32)
def _attribution(path: str, mtime: float, clip: str, _y: np.ndarray, sr: int,
                 layer: str | None, target: str | None, voice_key=None, _voice=None) -> dict:
    ins = _inspector(path, mtime)
    view = ins.view(_y, sr, voice=_voice)
    a = ins.attribute(view, layer=layer, target=target)
    return {"spec": view.spectrogram, "spf": view.seconds_per_frame, "start": view.start_s,
            "attribution": a, "layer": a.cam.layer if a.cam else None}


@st.cache_data(show_spinner=False, max_entries=32)
def _maps(path: str, mtime: float, clip: str, _y: np.ndarray, sr: int, layer: str,
          k: int) -> dict:
    ins = _inspector(path, mtime)
    view = ins.view(_y, sr)
    return {"maps": ins.feature_maps(view, layer, k), "spf": view.seconds_per_frame,
            "unit": ins.strongest_unit(view, layer)}


@st.cache_data(show_spinner=False, max_entries=32)
def _field(path: str, mtime: float, clip: str, _y: np.ndarray, sr: int, layer: str,
           unit: tuple[int, ...]) -> dict:
    ins = _inspector(path, mtime)
    view = ins.view(_y, sr)
    return {"rf": ins.receptive_field(view, layer, unit), "spec": view.spectrogram,
            "spf": view.seconds_per_frame, "start": view.start_s}


def _guarded(compute, name: str):
    """``compute()``, or None after a message saying why the view is not available."""
    from ser.audio import AudioError
    from ser.bundle import BundleError
    from ser.inference import VoiceNeededError
    from ser.insight import InsightError

    try:
        return compute()
    except VoiceNeededError as err:
        st.info(f"{err} The views inside it need the same voice statistics as its "
                "predictions.")
    except InsightError as err:
        st.info(str(err))
    except (AudioError, BundleError) as err:
        st.error(f"{name}: {err}")
    except OSError as err:  # the model file went away (a run deleted meanwhile)
        st.error(f"{name}: the model file cannot be read ({err.strerror or err}).")
    except (RuntimeError, ValueError) as err:  # e.g. a clip a fixed-size model cannot take
        st.error(f"{name}: this view could not be computed ({str(err).splitlines()[0]}).")
    return None


def attribution_panel(name: str, bundle: str | Path, y: np.ndarray, sr: int, *,
                      key: str, clip: str | None = None, choose_layer: bool = False,
                      voice=None) -> None:
    """Where model ``name`` listens on the clip (its first 5-s window). ``voice``: the
    `ser.speakers.VoiceProfile` a speaker-normalised model reads the clip with, or that any
    other model's answer is adapted to (None: not adapted)."""
    clip = clip or samples_hash(y, sr)
    layer = None
    predicted = "its prediction"
    target = st.selectbox("Emotion explained", [predicted, *config.LABELS],
                          key=f"{key}-target",
                          help="Where the model finds evidence for this emotion: its own "
                               "prediction by default; another emotion shows what would "
                               "argue for it instead.")
    target = None if target == predicted else target
    if choose_layer:
        ins = _guarded(lambda: inspector(bundle), name)
        if ins is None:
            return
        cams = ins.cam_layers
        if cams:
            default = ins.default_cam_layer
            labels = [c.name for c in cams]
            layer = st.selectbox("Grad-CAM layer", labels, index=labels.index(default.name),
                                 key=f"{key}-camlayer",
                                 help="The last convolutional layer (or residual block) "
                                      "with a frequency axis by default: coarse but "
                                      "closest to the decision. Earlier layers give finer, "
                                      "less class-specific maps.")
    vkey = None if voice is None else (voice.takes, round(voice.seconds, 3),
                                       samples_hash(np.concatenate(voice.clips), 0))
    with st.spinner(f"Looking inside {name}…"):
        out = _guarded(lambda: _attribution(str(bundle), Path(bundle).stat().st_mtime, clip,
                                            y, sr, layer, target, vkey, voice), name)
    if out is None:
        return
    a = out["attribution"]
    top = float(np.max(a.probs))
    heard = config.LABELS[int(np.argmax(a.probs))]
    explained = float(a.probs[config.LABELS.index(a.target)])
    st.markdown(f"**{name}** hears **{heard}** ({top:.0%}, uncalibrated)"
                + ("" if a.target == heard else
                   f"; explaining **{a.target}** ({explained:.0%})"))
    if a.cam is not None:
        st.plotly_chart(pi.gradcam_overlay(
            out["spec"], a.cam.cam, seconds_per_frame=out["spf"], start_s=out["start"],
            title=f"Grad-CAM for “{a.target}” at {a.cam.layer}"), width="stretch",
            key=f"{key}-cam")
        if a.cam.peak <= 0:
            st.caption("No part of the spectrogram pushes this layer towards the emotion "
                       "(the map is empty).")
        elif a.cam.time_only:
            st.caption("This layer has no frequency axis left, so the map is over time only.")
    if a.fs1 is not None:
        st.plotly_chart(pi.fs1_family_bars(
            a.fs1.families, a.fs1.shares,
            title=f"FS1 families → “{a.target}”"), width="stretch", key=f"{key}-fs1")
        st.caption(f"Which of the {len(a.fs1.values)} FS1 values push towards "
                   f"“{a.target}”: integrated gradients from the training mean, {IG_STEPS} "
                   f"steps; the bars add up "
                   f"to {sum(a.fs1.families.values()):+.2f}, the logit's change from the "
                   f"average training clip to this one ({a.fs1.delta:+.2f}). Percentages: "
                   "each family's share of the absolute attribution.")
        if st.toggle("Every value", key=f"{key}-fs1-values"):
            st.plotly_chart(pi.fs1_value_bars(a.fs1.values, a.fs1.spans), width="stretch",
                            key=f"{key}-fs1-v")
    for note in a.notes:
        st.caption(note)


def layers_panel(name: str, bundle: str | Path, y: np.ndarray, sr: int, *, key: str,
                 clip: str | None = None) -> None:
    """Feature maps of a chosen layer and the receptive field of a chosen unit."""
    clip = clip or samples_hash(y, sr)
    ins = _guarded(lambda: inspector(bundle), name)
    if ins is None:
        return
    if not ins.layers:
        st.info(f"{name} has no convolutional or pooling layer to show"
                + (": its encoder is a frozen LSTM whose outputs are averaged over the clip."
                   if ins.space == "voice" else "."))
        return
    path, mtime = str(bundle), _guarded(lambda: Path(bundle).stat().st_mtime, name)
    if mtime is None:
        return
    labels = {x.name: x for x in ins.layers}
    c1, c2 = st.columns([3, 1])
    start = ins.default_cam_layer or ins.layers[-1]  # the Grad-CAM layer, when there is one
    lname = c1.selectbox("Layer", list(labels), format_func=lambda n: labels[n].label,
                         index=list(labels).index(start.name), key=f"{key}-layer")
    k = c2.slider("Channels shown", 1, 16, 8, key=f"{key}-k")
    layer = labels[lname]
    out = _guarded(lambda: _maps(path, mtime, clip, y, sr, lname, k), name)
    if out is None:
        return
    fm = out["maps"]
    st.plotly_chart(pi.feature_map_grid(
        fm.maps, fm.channels, fm.energy, centres=fm.centres, seconds_per_frame=out["spf"],
        time_axis=layer.space == "fs2",
        title=f"{lname}: the {len(fm.channels)} strongest of {layer.shape[0]} channels "
              "(mean squared activation)"), width="stretch", key=f"{key}-maps")
    st.markdown("**Receptive field of one unit**")
    shape = layer.shape
    best = out["unit"]
    cols = st.columns(len(shape))
    channel = cols[0].number_input("Channel", 0, shape[0] - 1, int(best[0]),
                                   key=f"{key}-{lname}-ch")
    pos = []
    names = (["row (frequency)", "column (time)"] if len(shape) == 3 else ["position"])
    for col, n, label, b in zip(cols[1:], shape[1:], names, best[1:]):
        pos.append(col.slider(label, 0, n - 1, int(b), key=f"{key}-{lname}-{label}"))
    unit = (int(channel), *map(int, pos))
    res = _guarded(lambda: _field(path, mtime, clip, y, sr, lname, unit), name)
    if res is None:
        return
    rf = res["rf"]
    bands, frames = rf.size
    what = (f"{bands} mel bands × {frames} frames ({frames * res['spf']:.2f} s)"
            if rf.space == "fs2" else f"FS1 values {rf.cols[0]}–{rf.cols[1]}")
    st.plotly_chart(pi.receptive_field_overlay(
        res["spec"], rf, seconds_per_frame=res["spf"], start_s=res["start"],
        title=f"Unit {unit} of {lname} sees {what}"), width="stretch", key=f"{key}-rf")
    st.caption("Rectangle: every input cell that can change this unit (computed by "
               "back-propagating from the unit through the network's connections). White "
               "contours: how strongly each cell changed it on this clip (|gradient|, 10 %, "
               "50 % and 90 % of its maximum). The strongest unit of the strongest channel "
               "is chosen first.")


def corpus_clip_samples(path: str) -> tuple[np.ndarray, int] | None:
    """Decoded samples of a corpus clip, or None after an error message."""
    from ser.audio import AudioError

    try:
        return _decoded(path, Path(path).stat().st_mtime)
    except (AudioError, OSError) as err:
        st.error(f"{Path(path).name}: {err}")
        return None


@st.cache_data(show_spinner=False, max_entries=16)
def _decoded(path: str, mtime: float) -> tuple[np.ndarray, int]:
    from ser.audio import load_audio

    return load_audio(path, sr=config.SAMPLE_RATE)
