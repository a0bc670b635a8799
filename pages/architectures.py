"""Architectures: layer tables, sizes, diagrams and what makes each design different."""

import numpy as np
import pandas as pd
import streamlit as st

from ser import config, plots
from ser.audio import AudioError, accepted_formats, load_audio
from ser.models import describe, list_models, models_table
from ser.voice import encoder_macs
from ser.zoo import all_models
from ui import insight
from ui.state import corpus_sidebar, get_corpus, pct, settings

st.title("🧱 Architectures")
corpus_sidebar()
st.caption("Every network SER Studio can train. 1D CNNs read FS1 — 169 numbers summarising a "
           "clip (ZCR, RMS, 20 MFCCs, 12 chroma, 7 contrast bands, 128 mel powers); 2D CNNs "
           "read FS2 — a 128 × 216 log-mel image of up to 5 s. The two voice read-outs learn "
           "from a pretrained, frozen speaker encoder's summary of the clip (the only "
           "pretrained network here).")


INPUTS = {"fs1": "FS1: 169-value summary", "fs2": "FS2: 128-band log-mel image",
          "fs1+fs2": "FS1 + FS2", "voice": "voice: 1,792 statistics of a pretrained encoder"}


@st.cache_data(show_spinner=False)
def overview() -> pd.DataFrame:
    """The architectures as a reader wants them: words for column names, sizes in
    thousands/millions, the input spelled out, SER Studio's own designs first."""
    from ser.zoo import architecture_origin

    t = models_table()
    out = pd.DataFrame({
        "architecture": t["display_name"], "name": t["name"],
        "from": [architecture_origin(n) for n in t["name"]],
        "input": t["input"].map(lambda v: INPUTS.get(v, v)),
        "parameters": t["params"].map(lambda v: f"{v / 1e6:.2f} M" if v >= 1e6
                                      else f"{v / 1e3:.0f} k"),
        "multiply-adds per clip": [f"{v / 1e6:,.1f} M" if i != "voice" else
                                   f"{(v + encoder_macs(5.0)) / 1e6:,.0f} M (encoder)"
                                   for v, i in zip(t["MACs"], t["input"])],
        "clip length": [("any" if v else "fixed 5 s") if i != "voice" else "any (in 5-s windows)"
                        for v, i in zip(t["variable_length"], t["input"])],
    })
    return out.sort_values(["from", "name"], kind="stable")


@st.cache_data(show_spinner=False, max_entries=64)
def desc(name: str, activation: str) -> dict:
    return describe(name, activation=activation)


def designs(trained) -> None:
    """Every architecture in a table; two side by side with their layers."""
    st.table(overview(), hide_index=True)  # a table, not a grid: long names are not cut
    names = list_models()
    c1, c2, c3 = st.columns(3)
    a = c1.selectbox("Model A", names, index=names.index("lenet2d") if "lenet2d" in names else 0)
    b = c2.selectbox("Model B", ["(none)", *names],
                     index=1 + names.index("ser2d") if "ser2d" in names else 0)
    activation = c3.selectbox("Activation", ["relu", "silu", "elu"])
    chosen = [a] + ([b] if b != "(none)" else [])
    cols = st.columns(len(chosen))
    for col, name in zip(cols, chosen):
        d = desc(name, activation)
        with col:
            st.subheader(d["display_name"])
            st.caption(f"`{name}` · {d['family']} · input {d['input_shape']} · from the "
                       f"{d['source']}")
            m = st.columns(3)
            m[0].metric("Parameters", f"{d['total_params']:,}")
            if d["input_space"] == "voice":
                m[1].metric("MACs / clip", f"{(d['macs'] + encoder_macs(5.0)) / 1e6:,.0f} M",
                            help=f"The frozen voice encoder on 5 s of audio "
                                 f"({encoder_macs(5.0) / 1e6:,.0f} M, run once while "
                                 f"features are made) plus the read-out ({d['macs']:,}).")
            else:
                m[1].metric("MACs / clip", f"{d['macs'] / 1e6:,.1f} M")
            voice = d["input_space"] == "voice"
            m[2].metric("Input length", "any" if d["variable_length"] or voice else "fixed",
                        help="The voice encoder summarises a clip of any length into 1,792 "
                             "numbers (long recordings in 5-s windows)." if voice else
                             "Global-pooling models accept clips of any length; models with a "
                             "flatten + dense head need exactly the 169 values or 216 frames.")
            st.markdown(d["summary"])
            st.caption(d["size_note"])
            if voice:
                st.caption("No convolutional stack: each unit of the encoder's LSTM layers sees "
                           "the clip up to its own moment, and their outputs are averaged over "
                           "the whole clip.")
            elif d.get("receptive_field"):
                st.caption(f"Receptive field of the convolutional stack: {d['receptive_field']}")
            st.plotly_chart(plots.architecture_diagram(d["layers"], "Layers (width ∝ log "
                                                       "parameters)"),
                            width="stretch", key=f"diag-{name}")
            layers = pd.DataFrame(d["layers"])
            layers["output_shape"] = layers["output_shape"].map(lambda v: " × ".join(map(str, v)))
            st.dataframe(layers.rename(columns={
                "layer": "layer", "type": "type", "output_shape": "output (channels × …)",
                "params": "parameters", "macs": "multiply-adds"}), hide_index=True,
                width="stretch", height=320, column_config={
                    c: st.column_config.NumberColumn(format="localized")
                    for c in ("parameters", "multiply-adds")})
            mine = [e for e in trained if e.card.arch == name]
            if mine:
                st.markdown("**Trained**")
                for e in mine:
                    t = e.scores
                    st.markdown(f"- {e.name}: accuracy {pct(t.accuracy if t else None)}, UAR "
                                f"{pct(t.uar if t else None)} — {e.card.protocol_caption()}")
            else:
                st.caption("Not trained yet: launch it from the Train page.")


def inside_models(trained, request) -> None:
    """One clip through trained models: attribution, feature maps, receptive fields."""
    st.header("Inside the models")
    st.caption("What trained models do with one clip. **Where the model listens**: Grad-CAM on "
               "the mel-spectrogram for models that read it (the last convolutional layer's "
               "channels weighted by how much they push towards the predicted emotion), "
               "integrated gradients over the 169 FS1 values, summed per family, for models that "
               "read the summary (the combined model gets both). **What each layer computes**: "
               "a layer's strongest feature maps, and the part of the spectrogram one unit can "
               "see. One 5-s window of the clip, prepared exactly as for prediction.")
    inside = {e.name: e for e in trained}
    if not inside:
        st.info("No trained model yet: shipped bundles live in `models/`, and runs launched on "
                "the Train page appear here when they finish.")
        return
    corpus = get_corpus()
    clips = corpus.manifest["clip"].tolist()
    if request:
        if request.get("clip") in clips:
            st.session_state["inside_source"] = "Corpus clip"
            st.session_state["inside_clip"] = request["clip"]
        if request.get("model") in inside:
            st.session_state["inside_a"] = request["model"]
    source = st.radio("Clip", ["Corpus clip", "Upload"], horizontal=True, key="inside_source")
    samples, clip_name = None, None
    if source == "Corpus clip":
        clip_name = st.selectbox("Clip from the corpus", clips, key="inside_clip")
        if clip_name:
            row = corpus.manifest.set_index("clip").loc[clip_name]
            st.caption(f"Intended emotion: **{row['emotion']}** · speaker {row['speaker']}")
            samples = insight.corpus_clip_samples(row["path"])
    else:
        up = st.file_uploader("Audio file", type=list(accepted_formats()), key="inside_upload")
        if up is not None:
            clip_name = up.name
            try:
                samples = load_audio(up.getvalue(), sr=config.SAMPLE_RATE,
                                     max_seconds=settings().clip_limit)
            except AudioError as err:
                st.error(f"**{up.name}**: {err}")
    if samples is not None:
        y, sr = samples
        window_s = config.FS2_FRAMES * config.HOP_LENGTH / config.SAMPLE_RATE
        if len(y) / sr > window_s + 0.05:  # the models read 5 s at a time: choose which
            last = float(np.floor((len(y) / sr - window_s) * 2) / 2)
            start = st.slider("Start of the 5-s excerpt (s)", 0.0, last, 0.0, 0.5,
                              key="inside_start", help="The models read the clip in windows of "
                              f"{window_s:.1f} s; the views show one window.")
            y = y[int(start * sr):int((start + window_s) * sr)]
        key = insight.samples_hash(y, sr)
        st.audio(y, sample_rate=sr)
        # Best first, so the defaults are the best spectrogram model beside the best FS1 model.
        model_names = sorted(inside, key=lambda n: -((inside[n].scores.accuracy or 0)
                                                      if inside[n].scores else 0))
        best_1d = next((n for n in model_names if inside[n].card.input_space == "fs1"), None)
        best_2d = next((n for n in model_names if "fs2" in inside[n].card.input_space), None)
        c1, c2 = st.columns(2)
        first = c1.selectbox("Model", model_names, key="inside_a",
                             index=model_names.index(best_2d or model_names[0]))
        rest = ["(none)", *model_names]
        second = c2.selectbox("Beside it", rest, key="inside_b",
                              index=rest.index(best_1d) if best_1d and best_1d != first
                              else min(2, len(rest) - 1))
        pair = [first] + ([second] if second not in ("(none)", first) else [])
        for col, name in zip(st.columns(len(pair)), pair):
            with col:
                insight.attribution_panel(name, inside[name].bundle, y, sr, clip=key,
                                          key=f"inside-{name}", choose_layer=True)
        st.subheader("What each layer computes")
        which = st.radio("Model", pair, horizontal=True, key="inside_layers_model")
        insight.layers_panel(which, inside[which].bundle, y, sr, clip=key,
                             key=f"layers-{which}")
    elif source == "Corpus clip" and not clips:
        st.info("The corpus has no clips.")


request = st.session_state.pop(insight.REQUEST, None)  # sent by the Results page
if request:
    st.session_state["arch_view"] = "Inside the trained models"
# One half of the page at a time: the designs, or what trained models do with a clip.
view = st.radio("Show", ["Designs", "Inside the trained models"], horizontal=True,
                key="arch_view", help="Designs: layer tables and diagrams of every "
                "architecture. Inside: where a trained model listens in one clip, its "
                "feature maps and receptive fields.")
trained = all_models()
if view == "Designs":
    designs(trained)
else:
    inside_models(trained, request)
