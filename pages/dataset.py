"""Dataset: class balance, speakers, sentences, quirks, and a clip browser with features."""

import numpy as np
import pandas as pd
import streamlit as st

from ser import config, plots
from ser.audio import AudioError, load_audio
from ser.features import clip_features
from ui.state import corpus_badge, corpus_sidebar, get_corpus

st.title("📊 Dataset")
corpus_sidebar()
corpus = get_corpus()
corpus_badge(corpus)
m = corpus.manifest


@st.cache_data(show_spinner=False, max_entries=64)
def analyse(path: str):
    y, sr = load_audio(path, sr=config.SAMPLE_RATE)
    f = clip_features(y)
    return y, sr, f["fs1"], f["fs2"]


@st.cache_data(show_spinner=False, max_entries=4)
def scan_quirks(root: str, n: int, _manifest: pd.DataFrame, _bar=None):
    from ser.corpora.crema_d import quirks

    def progress(done, total):
        if _bar is not None:
            _bar.progress(done / max(total, 1), text=f"Scanning audio: {done:,}/{total:,} clips")

    q = quirks(_manifest, progress=progress)
    q.pop("peak", None)
    return q


overview, browser, compare = st.tabs(["Overview", "Clip browser", "Same words, two emotions"])

with overview:
    c1, c2 = st.columns(2)
    c1.plotly_chart(plots.emotion_counts(m), width="stretch")
    c2.plotly_chart(plots.duration_histogram(m), width="stretch")
    st.plotly_chart(plots.stacked_counts(m, "speaker", "Clips per speaker"),
                    width="stretch")
    c1, c2 = st.columns(2)
    c1.plotly_chart(plots.stacked_counts(m, "sentence", "Clips per sentence"),
                    width="stretch")
    c2.plotly_chart(plots.stacked_counts(m, "intensity", "Clips per intensity level"),
                    width="stretch")
    with st.expander("The 12 sentences"):
        st.table(pd.DataFrame({"code": list(config.SENTENCES), "sentence": list(
            config.SENTENCES.values())}))
    if "sex" in m:
        spk = m.drop_duplicates("speaker")
        st.markdown(f"**Speakers:** {len(spk)} — " + ", ".join(
            f"{v} {k}" for k, v in spk["sex"].value_counts().items())
            + (f"; age {int(spk['age'].min())}–{int(spk['age'].max())} (median "
               f"{int(spk['age'].median())})" if "age" in spk and spk["age"].notna().any()
               else ""))
    if "human_vote" in m:
        from ser.metrics import human_vote_accuracy

        acc = human_vote_accuracy(m["emotion"], m["human_vote"])
        if acc is not None:
            st.markdown(f"**Human raters, voice only:** the majority vote matched the intended "
                        f"emotion on **{acc:.1%}** of clips (ties split).")
    st.subheader("Quirks")
    st.caption("Digital silence, identical recordings filed under different emotions, and "
               "clipping. Scanning decodes every clip once (cached afterwards).")
    key = f"quirks::{corpus.root}::{len(m)}"
    if st.button("Scan the audio for quirks", key="scan") or key in st.session_state:
        bar = st.progress(0.0, text="Scanning audio…")
        q = scan_quirks(str(corpus.root), len(m), m, bar)
        bar.empty()
        st.session_state[key] = True
        c1, c2, c3 = st.columns(3)
        c1.metric("Digital silence", len(q["silent"]))
        c2.metric("Identical audio, different labels", len(q["duplicates_conflicting"]))
        c3.metric("Clipped clips", len(q["clipped"]))
        if q["silent"]:
            st.write("Silent: " + ", ".join(q["silent"]))
        for d in q["duplicates_conflicting"]:
            st.write("Identical: " + " = ".join(d))
    if corpus.unparsed:
        st.warning(f"{len(corpus.unparsed)} audio files were skipped because their names do "
                   "not follow ActorID_SENTENCE_EMOTION_LEVEL.")

with browser:
    c = st.columns(4)
    emo = c[0].selectbox("Emotion", ["any", *config.LABELS], key="f_emotion")
    spk = c[1].selectbox("Speaker", ["any", *sorted(m["speaker"].unique())], key="f_speaker")
    sen = c[2].selectbox("Sentence", ["any", *sorted(m["sentence"].unique())], key="f_sentence")
    inten = c[3].selectbox("Intensity", ["any", *sorted(m["intensity"].unique())],
                           key="f_intensity")
    sel = m
    for col, v in (("emotion", emo), ("speaker", spk), ("sentence", sen), ("intensity", inten)):
        if v != "any":
            sel = sel[sel[col] == v]
    if sel.empty:
        st.info("No clip matches these filters.")
    else:
        clip = st.selectbox(f"Clip ({len(sel):,} match)", sel["clip"].tolist(), key="clip")
        row = sel.set_index("clip").loc[clip]
        info = (f"**{clip}** — speaker {row['speaker']}, “{row['sentence_text']}”, "
                f"**{row['emotion']}** ({row['intensity']}), {row['duration_s']:.2f} s")
        if "sex" in row and isinstance(row.get("sex"), str):
            info += f"; {row['sex']}, {row.get('age', '?')}"
        st.markdown(info)
        if isinstance(row.get("human_vote"), str) and row["human_vote"]:
            agree = row["emotion"] in row["human_vote"].split(":")
            st.markdown(f"Raters' voice-only vote: **{row['human_vote']}** "
                        + ("✅ matches" if agree else "❌ differs from the intended emotion"))
        st.audio(open(row["path"], "rb").read())
        try:
            y, sr, v1, v2 = analyse(row["path"])
        except AudioError as err:
            st.error(f"This clip cannot be decoded: {err}")
        else:
            c1, c2 = st.columns(2)
            c1.plotly_chart(plots.waveform(y, sr), width="stretch")
            c2.plotly_chart(plots.spectrum(y, sr), width="stretch")
            c1, c2 = st.columns(2)
            c1.plotly_chart(plots.stft_spectrogram(y, sr), width="stretch")
            c2.plotly_chart(plots.mel_image(v2), width="stretch")
            c1, c2 = st.columns(2)
            c1.plotly_chart(plots.mfcc_image(y, sr), width="stretch")
            c2.plotly_chart(plots.fs1_vector(v1), width="stretch")
            st.caption("FS2 is padded with −80 dB (silence) to 216 frames ≈ 5 s; FS1 groups "
                       "are scaled separately for display (hover for raw values).")

with compare:
    c = st.columns(4)
    spk2 = c[0].selectbox("Speaker", sorted(m["speaker"].unique()), key="cmp_speaker")
    sub = m[m["speaker"] == spk2]
    sen2 = c[1].selectbox("Sentence", sorted(sub["sentence"].unique()), key="cmp_sentence")
    sub = sub[sub["sentence"] == sen2]
    emos = [e for e in config.LABELS if e in set(sub["emotion"])]
    e1 = c[2].selectbox("Emotion A", emos, index=0, key="cmp_a")
    e2 = c[3].selectbox("Emotion B", emos, index=min(len(emos) - 1, emos.index("neutral") if
                                                      "neutral" in emos else 1), key="cmp_b")
    cols = st.columns(2)
    for col, e in zip(cols, (e1, e2)):
        rows = sub[sub["emotion"] == e]
        if rows.empty:
            continue
        r = rows.iloc[0]
        with col:
            st.markdown(f"**{e}** — {r['clip']}")
            st.audio(open(r["path"], "rb").read())
            try:
                y, sr, v1, v2 = analyse(r["path"])
            except AudioError as err:
                st.error(str(err))
                continue
            st.plotly_chart(plots.waveform(y, sr), width="stretch", key=f"w{e}{col}")
            st.plotly_chart(plots.mel_image(v2, title=f"Mel-spectrogram ({e})"),
                            width="stretch", key=f"m{e}{col}")
            st.caption(f"RMS level {20 * np.log10(max(float(v1[1]), 1e-9)):.1f} dBFS · "
                       f"ZCR {float(v1[0]):.3f}")
