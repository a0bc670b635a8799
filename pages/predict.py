"""Predict: upload, record or pick a clip; every selected model's probabilities."""

import streamlit as st

from ser import plots
from ser.audio import AudioError
from ser.bundle import BundleError
from ser.ensemble import read_ensemble
from ser.inference import Predictor, open_clip, score_clip
from ser.zoo import all_models
from ui.state import corpus_sidebar, get_corpus, get_predictor, pct

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
            st.success(f"Loaded {own_predictor.card.display_name or own_predictor.name}")
        except BundleError as err:
            st.error(f"That model file cannot be used: {err}")

if source is None:
    st.info("Upload a file, record your voice, or pick a corpus clip to begin.")
    st.stop()

try:
    clip = open_clip(source, source_name)
except AudioError as err:
    st.error(f"**{source_name}**: {err}")
    st.stop()

q = clip.quality
st.subheader("Input")
c = st.columns(5)
c[0].metric("Duration", f"{q.duration_s:.2f} s")
c[1].metric("Sample rate", f"{clip.sr:,} Hz")
c[2].metric("Channels", clip.channels)
c[3].metric("Level (RMS)", "silent" if q.peak == 0 else f"{q.rms_dbfs:.0f} dBFS")
c[4].metric("Clipped", f"{q.clipped_fraction:.2%}")
for w in q.warnings:
    st.warning(w)
if clip.channels > 1:
    st.caption(f"{clip.channels} channels averaged to mono.")
st.audio(source)
c1, c2 = st.columns(2)
c1.plotly_chart(plots.waveform(clip.y, clip.sr), width="stretch")
c2.plotly_chart(plots.mel_image(clip.mel_db, title="Mel-spectrogram (whole clip)"),
                width="stretch")

entries = {e.name: e for e in all_models()}
names = list(entries)
shipped_ens = read_ensemble()
default = [n for n in (shipped_ens.members if shipped_ens else []) if n in entries]
default = default or [n for n, e in entries.items() if e.source == "shipped"] or names[:3]
chosen = st.multiselect("Models", names, default=default,
                        help="By default the shipped ensemble: the models with the best "
                             "validation UAR.")
if shipped_ens and sorted(chosen) == sorted(shipped_ens.members):
    t = shipped_ens.test
    st.caption(f"Shipped ensemble ({shipped_ens.selection}): test accuracy "
               f"{pct(t.accuracy)}, UAR {pct(t.uar)} on {t.n:,} clips of unseen "
               f"speakers ({shipped_ens.protocol_caption()}).")
if not chosen and own_predictor is None:
    st.info("No model selected. Shipped models live in `models/`; train one on the Train page.")
    st.stop()

models = [(n, lambda path=entries[n].bundle: get_predictor(path)) for n in chosen]
if own_predictor is not None:
    models.append((f"{own_predictor.name} (uploaded)", lambda: own_predictor))
bar = st.progress(0.0, text="Scoring…")
scores = score_clip(clip, models, progress=lambda i, n: bar.progress(
    i / n, text=f"Scored {i}/{n} models"))
bar.empty()
for name, message in scores.errors:
    st.error(f"{name}: {message}")
if not scores.results:
    st.stop()

st.subheader("Verdict")
c1, c2, c3 = st.columns([2, 1, 1])
who = (f"Ensemble of {len(scores.results)} models" if len(scores.results) > 1
       else scores.results[0].name)
c1.markdown(f"## {scores.verdict.upper()}  \n{who}")
c2.metric("Confidence", pct(scores.confidence))
c3.metric("Models agreeing", f"{scores.agreement:.0%}")
if scores.confidence < 0.4:
    st.caption("Low confidence: the models spread their belief over several emotions.")
st.plotly_chart(plots.probability_bars(scores.probs, "Ensemble probabilities"),
                width="stretch")

st.subheader("Every model")
cols = st.columns(min(3, len(scores.results)))
for i, r in enumerate(scores.results):
    with cols[i % len(cols)]:
        p, card = r.prediction, r.card
        st.markdown(f"**{r.name}** → {p.label} ({pct(p.confidence)})")
        acc = card.test.accuracy if card.test else None
        st.caption(f"{card.display_name or card.arch}; test accuracy {pct(acc)} "
                   f"({card.protocol_caption()})")
        st.plotly_chart(plots.probability_bars(p.probs), width="stretch", key=f"p-{i}")
timeline = scores.timeline()
if timeline is not None:
    st.subheader("Emotion over time")
    st.plotly_chart(plots.emotion_timeline(*timeline), width="stretch")
with st.expander("Probabilities as a table"):
    st.dataframe(scores.table(), hide_index=True, width="stretch")
