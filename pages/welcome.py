"""Home: what SER Studio does, the corpus and device in use, the shipped models."""

import pandas as pd
import streamlit as st

from ser import config
from ser.corpora import summary
from ser.devices import device_description
from ser.ensemble import default_models, read_ensemble
from ser.metrics import HUMAN_VOICE_RULE, human_voice_baseline
from ser.zoo import leaderboard, shipped_models
from ui.state import corpus_badge, corpus_sidebar, get_corpus, pct, show_path

st.title("🎙️ SER Studio")
corpus_sidebar()
st.markdown(
    "Recognise the emotion in a voice — **angry, disgust, fear, happy, neutral, sad** — with "
    "convolutional networks you can inspect, train and compare. Explore CREMA-D and the other "
    "emotional-speech corpora (TESS, SAVEE, RAVDESS, EmoDB, EMOVO, URDU, or your own folder), "
    "train 1D CNNs on a 169-value acoustic summary, 2D CNNs on mel-spectrograms or a small "
    "read-out of a pretrained speaker encoder, and test every model on your own recordings."
)

corpus = get_corpus()
s = summary(corpus)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Clips", f"{s['clips']:,}")
c2.metric("Speakers", s["speakers"])
c3.metric("Hours of audio", f"{s['duration_s']['total_h']:.2f}")
c4.metric("Compute", device_description().split(" (")[0])
corpus_badge(corpus)
st.caption(f"Device for training: **{device_description()}**. Training runs in its own "
           "process, so you can leave a page while it works.")

st.subheader("Shipped models")
models = shipped_models()
if not models:
    st.warning(f"No model bundles in {show_path(config.models_dir())}. Train one on the Train "
               "page; finished runs appear in Results and Predict.")
else:
    defaults, why = default_models()
    voice_set, voice_why = default_models(voice=True)
    show_voice = voice_set != defaults  # the set once a voice is calibrated, if it differs
    if set(defaults) == {m.name for m in models}:
        defaults = []  # no choice was made: nothing to star
        st.markdown("**What Predict uses by default:** every shipped model.")
    else:
        names = ", ".join(f"`{n}`" for n in defaults)
        st.markdown(f"**What Predict uses by default** (★ below): {names} — {why}.")
    if show_voice:
        names = ", ".join(f"`{n}`" for n in voice_set)
        st.markdown(f"**Once you calibrate to your voice** (a few takes on Predict): "
                    f"{names} — {voice_why}.")
    board = leaderboard(models, read_ensemble())
    for origin, rows in board.groupby("origin", sort=False):
        st.markdown(f"**{origin}** — best first")
        st.table(pd.DataFrame({
            "model": [f"★ {m}" if m in defaults else m for m in rows["model"]],
            "architecture": rows["display name"],
            "input": rows["features"], "test accuracy": rows["accuracy"].map(pct),
            "UAR": rows["UAR"].map(pct), "split": rows["split"], "data": rows["data"]}),
            hide_index=True)
    st.caption("Accuracy and UAR (unweighted average recall) on each model's held-out test "
               "clips; the split and data columns name the protocol and corpus each number "
               "comes from. Speaker-independent models come first: only they say how a model "
               "does on voices it never heard.")

st.subheader("Where to go")
cols = st.columns(6)
for col, (page, text) in zip(cols, [
    ("pages/dataset.py", "Listen to clips; see waveforms, spectra and the features."),
    ("pages/train.py", "Train an architecture and watch its loss curves live."),
    ("pages/results.py", "Compare every trained model on the same test protocol."),
    ("pages/studies.py", "Check the seed write-ups' claims: runs over seeds, mean ± std."),
    ("pages/predict.py", "Upload or record a clip; see what every model hears."),
    ("pages/architectures.py", "Layer tables, and where trained models listen in a clip."),
]):
    with col:
        st.page_link(page, label=page.split("/")[1][:-3].capitalize(), icon="➡️")
        st.caption(text)

with st.expander("About the data and credits"):
    human = human_voice_baseline(corpus.manifest, f"every clip of {corpus.name} with a vote")
    st.markdown(
        "CREMA-D (Cao et al., 2014, *IEEE Trans. Affective Computing* 5(4):377–390): 7,442 "
        "clips of 91 actors speaking 12 sentences in six emotions, released under the Open "
        "Database License. SER Studio never ships the audio; point it at your copy.")
    if human:
        st.markdown(f"**Human accuracy, voice only:** {human['text']}.")
    else:
        st.markdown(f"**Human accuracy, voice only** — the share of clips where "
                    f"{HUMAN_VOICE_RULE} — appears here, on the Dataset page and beside each "
                    "model in Results once a CREMA-D folder with its summaryTable.csv is "
                    "chosen in the sidebar.")
