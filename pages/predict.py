"""Predict: upload, record or pick a clip; every selected model's probabilities."""

import numpy as np
import pandas as pd
import streamlit as st

from pages.common import corpus_sidebar, get_corpus, get_predictor, pct, protocol_caption
from ser import config, plots
from ser.audio import AudioError, info, load, quality_report, resample
from ser.bundle import BundleError
from ser.features import fs2
from ser.inference import Prediction, Predictor, agreement, ensemble
from ser.results import all_models, read_ensemble

st.title("🎧 Predict")
corpus_sidebar()
st.caption("Speak a sentence in an emotion (or upload a recording) and see what every model "
           "hears. Models trained on acted CREMA-D sentences; expect them to be less sure on "
           "spontaneous speech.")

upload_tab, record_tab, corpus_tab = st.tabs(["Upload", "Record", "Corpus clip"])
source, source_name = None, None
with upload_tab:
    up = st.file_uploader("Audio file", type=["wav", "mp3", "flac", "ogg", "opus", "m4a",
                                              "aiff", "aif"],
                          help="Up to 50 MB; longer than 5 s is scored in windows.")
    if up is not None:
        source, source_name = up.getvalue(), up.name
with record_tab:
    try:
        from audio_recorder_streamlit import audio_recorder

        rec = audio_recorder(text="Click to record, click again to stop", pause_threshold=3.0,
                             sample_rate=16000, icon_size="2x")
    except Exception:  # noqa: BLE001 - a component failing to load must not break the page
        rec = None
        st.warning("The recorder could not be loaded in this browser; upload a file instead.")
    if rec and source is None:
        source, source_name = rec, "recording.wav"
with corpus_tab:
    corpus = get_corpus()
    m = corpus.manifest
    clip = st.selectbox("Clip from the corpus", ["(none)", *m["clip"].tolist()])
    if clip != "(none)" and source is None:
        row = m.set_index("clip").loc[clip]
        source, source_name = open(row["path"], "rb").read(), clip
        st.caption(f"Intended emotion: **{row['emotion']}**"
                   + (" — this clip may be in a model's training data" if not corpus.is_demo
                      else ""))

with st.expander("Use your own model file (.pt bundle)"):
    own = st.file_uploader("SER Studio bundle", type=["pt"], key="own_bundle")
    own_predictor = None
    if own is not None:
        try:
            own_predictor = Predictor(own.getvalue())
            st.success(f"Loaded {own_predictor.card.get('display_name', own_predictor.name)}")
        except BundleError as err:
            st.error(f"That model file cannot be used: {err}")

if source is None:
    st.info("Upload a file, record your voice, or pick a corpus clip to begin.")
    st.stop()

try:
    meta = info(source)
    y, sr = load(source, sr=None)
except AudioError as err:
    st.error(f"**{source_name}**: {err}")
    st.stop()

q = quality_report(y, sr, meta.channels)
st.subheader("Input")
c = st.columns(5)
c[0].metric("Duration", f"{q.duration_s:.2f} s")
c[1].metric("Sample rate", f"{sr:,} Hz")
c[2].metric("Channels", meta.channels)
c[3].metric("Level (RMS)", "silent" if q.peak == 0 else f"{q.rms_dbfs:.0f} dBFS")
c[4].metric("Clipped", f"{q.clipped_fraction:.2%}")
for w in q.warnings:
    st.warning(w)
if meta.channels > 1:
    st.caption(f"{meta.channels} channels averaged to mono.")
st.audio(source)
y22 = resample(y, sr, config.SAMPLE_RATE)  # decoded once above; only resample here
c1, c2 = st.columns(2)
c1.plotly_chart(plots.waveform(y, sr), width="stretch")
c2.plotly_chart(plots.mel_image(fs2(y22, frames=0), title="Mel-spectrogram (whole clip)"),
                width="stretch")

entries = all_models()
names = [e["name"] for e in entries]
shipped_ens = read_ensemble()
default = [n for n in (shipped_ens or {}).get("members", []) if n in names]
default = default or [e["name"] for e in entries if e["source"] == "shipped"] or names[:3]
chosen = st.multiselect("Models", names, default=default,
                        help="By default the shipped ensemble: the models with the best "
                             "validation UAR.")
if shipped_ens and sorted(chosen) == sorted(shipped_ens["members"]):
    t = shipped_ens["metrics"]["test"]
    st.caption(f"Shipped ensemble ({shipped_ens['selection']}): test accuracy "
               f"{pct(t['accuracy'])}, UAR {pct(t['uar'])} on {t['n']:,} clips of unseen "
               f"speakers ({shipped_ens['split'].get('protocol_name', '')}, "
               f"{shipped_ens['data'].get('corpus', '')}).")
if not chosen and own_predictor is None:
    st.info("No model selected. Shipped models live in `models/`; train one on the Train page.")
    st.stop()

results: list[tuple[str, dict, Prediction]] = []
bar = st.progress(0.0, text="Scoring…")
todo = [e for e in entries if e["name"] in chosen]
for i, e in enumerate(todo):
    try:
        p = get_predictor(e["bundle"])
        results.append((e["name"], e["card"], p.predict_samples(y22, config.SAMPLE_RATE)))
    except BundleError as err:
        st.error(f"{e['name']}: {err}")
    bar.progress((i + 1) / max(len(todo), 1), text=f"Scored {i + 1}/{len(todo)} models")
if own_predictor is not None:
    results.append((f"{own_predictor.name} (uploaded)", own_predictor.card,
                    own_predictor.predict_samples(y22, config.SAMPLE_RATE)))
bar.empty()
if not results:
    st.stop()

preds = [r[2] for r in results]
ens = ensemble(preds)
verdict = config.LABELS[int(np.argmax(ens))]
st.subheader("Verdict")
c1, c2, c3 = st.columns([2, 1, 1])
who = f"Ensemble of {len(preds)} models" if len(preds) > 1 else results[0][0]
c1.markdown(f"## {verdict.upper()}  \n{who}")
c2.metric("Confidence", pct(float(ens.max())))
c3.metric("Models agreeing", f"{agreement(preds):.0%}")
if ens.max() < 0.4:
    st.caption("Low confidence: the models spread their belief over several emotions.")
st.plotly_chart(plots.probability_bars(ens, "Ensemble probabilities"),
                width="stretch")

st.subheader("Every model")
cols = st.columns(min(3, len(results)))
for i, (name, card, p) in enumerate(results):
    with cols[i % len(cols)]:
        st.markdown(f"**{name}** → {p.label} ({pct(p.confidence)})")
        acc = card.get("metrics", {}).get("test", {}).get("accuracy")
        st.caption(f"{card.get('display_name', card.get('arch'))}; test accuracy {pct(acc)} "
                   f"({protocol_caption(card)})")
        st.plotly_chart(plots.probability_bars(p.probs), width="stretch",
                        key=f"p-{i}")
if any(len(p.window_probs) > 1 for p in preds):
    st.subheader("Emotion over time")
    longest = max(preds, key=lambda p: len(p.window_probs))
    mean_windows = np.mean([p.window_probs for p in preds if len(p.window_probs) ==
                            len(longest.window_probs)], axis=0)
    st.plotly_chart(plots.emotion_timeline(longest.window_starts_s, mean_windows,
                                           longest.window_s), width="stretch")
table = pd.DataFrame([{"model": n, "prediction": p.label, **{lab: round(float(v), 3) for lab, v
                       in zip(config.LABELS, p.probs)}} for n, _, p in results])
with st.expander("Probabilities as a table"):
    st.dataframe(table, hide_index=True, width="stretch")
