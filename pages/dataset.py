"""Dataset: class balance, speakers, sentences, quirks, a clip browser with features, and
a side-by-side comparison of the corpora in a pool (counts, loudness, bandwidth, spectra)."""

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from ser import config, plots
from ser.acoustics import corpus_acoustics, corpus_counts, describe_measures, ltas_table
from ser.audio import AudioError, load_audio
from ser.features import clip_features, floor_subtract
from ui.state import (
    corpus_badge,
    corpus_dir,
    corpus_names,
    corpus_sidebar,
    get_corpus,
    with_progress,
)

st.title("📊 Dataset")
corpus_sidebar()
corpus = get_corpus()
corpus_badge(corpus)
m = corpus.manifest
names = corpus_names(corpus)


@st.cache_data(show_spinner=False, max_entries=64)
def analyse(path: str):
    y, sr = load_audio(path, sr=config.SAMPLE_RATE)
    f = clip_features(y)
    return y, sr, f["fs1"], f["fs2"]


def scan_quirks(manifest: pd.DataFrame):
    def compute(progress):
        from ser.corpora.crema_d import quirks

        q = quirks(manifest, progress=progress)
        q.pop("peak", None)
        return q

    return compute


def measure(manifest: pd.DataFrame, per_group: int):
    return lambda progress: corpus_acoustics(manifest, per_corpus_emotion=per_group,
                                             progress=progress)


# A radio, not st.tabs: tabs build every tab's charts on every rerun, the radio only the
# one in view (choosing a clip then redraws one tab, not four).
VIEWS = ["Overview", "Clip browser", "Same words, two emotions", "Compare corpora"]
view = st.radio("View", VIEWS, horizontal=True, key="view", label_visibility="collapsed")

if view == "Overview":
    c1, c2 = st.columns(2)
    c1.plotly_chart(plots.emotion_counts(m), width="stretch")
    c2.plotly_chart(plots.duration_histogram(m), width="stretch")
    if "corpus" in m and m["corpus"].nunique() > 1:  # a pool: how much each corpus brings
        st.plotly_chart(plots.stacked_counts(m, "corpus", "Clips per corpus", names),
                        width="stretch", key="pool_corpora")
    st.plotly_chart(plots.stacked_counts(m, "speaker", "Clips per speaker"),
                    width="stretch")
    sentences = m["sentence"].fillna("").astype(str)
    n_sentences = sentences[sentences != ""].nunique()
    levels = set(m["intensity"].fillna("unspecified").astype(str)) - {"unspecified", ""}
    c1, c2 = st.columns(2)
    if 1 < n_sentences <= 60:
        c1.plotly_chart(plots.stacked_counts(m[sentences != ""], "sentence",
                                             "Clips per sentence"), width="stretch")
    elif n_sentences:
        c1.caption(f"{n_sentences:,} different sentences or words (too many to chart).")
    if len(levels) > 1:
        c2.plotly_chart(plots.stacked_counts(m, "intensity", "Clips per intensity level"),
                        width="stretch")
    codes = {s.rsplit(":", 1)[-1] for s in sentences.unique()}
    if codes & set(config.SENTENCES):
        with st.expander("The 12 CREMA-D sentences"):
            st.table(pd.DataFrame({"code": list(config.SENTENCES), "sentence": list(
                config.SENTENCES.values())}))
    if "sex" in m:
        spk = m.drop_duplicates("speaker")
        sexes = spk["sex"].fillna("").astype(str).replace("", "sex not recorded")
        ages = pd.to_numeric(spk["age"], errors="coerce").dropna() if "age" in spk else \
            pd.Series(dtype=float)
        st.markdown(f"**Speakers:** {len(spk)} — " + ", ".join(
            f"{v} {k}" for k, v in sexes.value_counts().items())
            + (f"; age {int(ages.min())}–{int(ages.max())} (median {int(ages.median())}"
               + (f", {len(ages)} speakers with a recorded age" if len(ages) < len(spk)
                  else "") + ")" if len(ages) else ""))
    from ser.metrics import human_voice_baseline

    human = human_voice_baseline(m, "every CREMA-D clip with a vote"
                                 + (" in this pool" if len(names) > 1 else ""))
    if human:
        st.markdown(f"**Human accuracy, voice only:** {human['text']}.")
    outside = m[~m["emotion"].isin(config.LABELS)]
    if len(outside):
        st.caption(f"{len(outside):,} clips carry a label outside the six ("
                   + ", ".join(f"{k}: {v}" for k, v in outside["label_raw"].value_counts()
                               .items()) + "); they are listed here but not used for "
                   "training or scoring by default.")
    st.subheader("Quirks")
    st.caption("Digital silence, identical recordings filed under different emotions, and "
               "clipping. Scanning decodes every clip once (cached afterwards).")
    key = f"quirks::{corpus_dir()}::{corpus.root}::{len(m)}"
    if st.button("Scan the audio for quirks", key="scan") or key in st.session_state:
        q = with_progress(key, scan_quirks(m), "Scanning audio:")
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
                   "not follow the corpus's naming scheme (first: "
                   f"`{Path(corpus.unparsed[0]).name}`).")

if view == "Clip browser":
    pooled = len(names) > 1
    c = st.columns(5 if pooled else 4)
    if pooled:
        corp = c[4].selectbox("Corpus", ["any", *names], key="f_corpus",
                              format_func=lambda k: names.get(k, k))
        scope = m if corp == "any" else m[m["corpus"] == corp]
    else:
        scope = m
    emo = c[0].selectbox("Emotion", ["any", *config.LABELS], key="f_emotion")
    spk = c[1].selectbox("Speaker", ["any", *sorted(scope["speaker"].unique())],
                         key="f_speaker")
    sen = c[2].selectbox("Sentence", ["any", *sorted(scope["sentence"].unique())],
                         key="f_sentence")
    inten = c[3].selectbox("Intensity", ["any", *plots.ordered_values(scope["intensity"],
                                                                      "intensity")],
                           key="f_intensity")
    sel = scope
    for col, v in (("emotion", emo), ("speaker", spk), ("sentence", sen), ("intensity", inten)):
        if v != "any":
            sel = sel[sel[col] == v]
    if sel.empty:
        st.info("No clip matches these filters.")
    else:
        clip = st.selectbox(f"Clip ({len(sel):,} match)", sel["clip"].tolist(), key="clip")
        row = sel.set_index("clip").loc[clip]
        label = row["emotion"] or f"{row.get('label_raw', '?')} (outside the six)"
        said = f", “{row['sentence_text']}”" if row.get("sentence_text") else ""
        info = (f"**{clip}** — speaker {row['speaker']}{said}, **{label}** "
                f"({row['intensity']}), {row['duration_s']:.2f} s")
        if isinstance(row.get("sex"), str) and row["sex"]:
            age = pd.to_numeric(pd.Series([row.get("age")]), errors="coerce").iloc[0]
            info += f"; {row['sex']}" + (f", {int(age)}" if pd.notna(age) else "")
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
            if c2.toggle("Noise floor removed", False, key="clip_denoise",
                         help="The log-mel image as models trained with the 'noise floor "
                              "removed' option see it: each band's steady background noise "
                              "is subtracted, so pauses fall to −80 dB whatever the room. "
                              "Compare a CREMA-D clip with a studio one (TESS, SAVEE): "
                              "the studio clip keeps far more weak detail."):
                c2.plotly_chart(plots.mel_image(
                    floor_subtract(v2), title="Mel-spectrogram, noise floor removed"),
                    width="stretch")
            else:
                c2.plotly_chart(plots.mel_image(v2), width="stretch")
            c1, c2 = st.columns(2)
            c1.plotly_chart(plots.mfcc_image(y, sr), width="stretch")
            c2.plotly_chart(plots.fs1_vector(v1), width="stretch")
            st.caption("FS2 is padded with −80 dB (silence) to 216 frames ≈ 5 s; FS1 groups "
                       "are scaled separately for display (hover for raw values).")

if view == "Same words, two emotions":
    c = st.columns(4)
    spk2 = c[0].selectbox("Speaker", sorted(m["speaker"].unique()), key="cmp_speaker")
    sub = m[m["speaker"] == spk2]
    sen2 = c[1].selectbox("Sentence", sorted(sub["sentence"].unique()), key="cmp_sentence")
    sub = sub[sub["sentence"] == sen2]
    emos = [e for e in config.LABELS if e in set(sub["emotion"])] or [""]
    e1 = c[2].selectbox("Emotion A", emos, index=0, key="cmp_a")
    e2 = c[3].selectbox("Emotion B", emos, index=min(len(emos) - 1, emos.index("neutral") if
                                                      "neutral" in emos else 1), key="cmp_b")
    cols = st.columns(2)
    for i, (col, e) in enumerate(zip(cols, (e1, e2))):
        rows = sub[sub["emotion"] == e]
        if rows.empty or not e:
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
            st.plotly_chart(plots.waveform(y, sr), width="stretch", key=f"w{e}{i}")
            st.plotly_chart(plots.mel_image(v2, title=f"Mel-spectrogram ({e})"),
                            width="stretch", key=f"m{e}{i}")
            st.caption(f"RMS level {20 * np.log10(max(float(v1[1]), 1e-9)):.1f} dBFS · "
                       f"ZCR {float(v1[0]):.3f}")

if view == "Compare corpora":
    counts = corpus_counts(m)
    who = (f"the {len(names)} corpora of this pool" if len(names) > 1 else
           f"{corpus.name} (one corpus; choose several folders separated by commas in the "
           "sidebar to compare corpora side by side)")
    st.caption(f"Comparing {who}. A model trained on one corpus also learns its microphones, "
               "rooms and level settings; the charts below show how far apart the corpora "
               "are before any model is involved.")
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(plots.corpus_emotion_bars(counts["emotions"], names), width="stretch",
                    key="cc_emotions")
    c2.plotly_chart(plots.speakers_by_corpus(counts["speakers"], names), width="stretch",
                    key="cc_speakers")
    if len(counts["outside"]):
        c1, c2 = st.columns([3, 2])
        c1.plotly_chart(plots.outside_label_bars(counts["outside"], names), width="stretch",
                        key="cc_outside")
        c2.dataframe(counts["outside"].assign(corpus=counts["outside"]["corpus"].map(
            lambda k: names.get(k, k))), hide_index=True, width="stretch")
        c2.caption("Labels with no counterpart among the six emotions: not used for "
                   "training or scoring by default.")
    st.plotly_chart(plots.distribution_by_corpus(counts["durations"], "duration_s",
                                                 "Clip durations (every clip)", "seconds",
                                                 names), width="stretch", key="cc_durations")

    st.markdown("**Loudness, bandwidth and spectrum**")
    per_group = st.select_slider("Clips measured per corpus and emotion", [20, 60, 150],
                                 value=60, key="cc_per_group",
                                 help="A seeded stratified sample; 60 takes about a minute "
                                      "for five corpora on two cores (cached afterwards).")
    key = f"acoustics::{corpus_dir()}::{corpus.root}::{len(m)}::{per_group}"
    if st.button("Measure the audio", key="measure") or key in st.session_state:
        clips, ltas = with_progress(key, measure(m, int(per_group)), "Measuring audio:")
        st.session_state[key] = True
        failed = int((clips["error"] != "").sum())
        st.caption(f"Measured {len(clips) - failed:,} clips at 22.05 kHz (at most {per_group} "
                   "per corpus and emotion, seed 0)"
                   + (f"; {failed} could not be decoded" if failed else "") + ". Level in "
                   "dBFS (0 = full scale); bandwidth = the highest frequency whose long-term "
                   "spectrum is within 50 dB of its peak (a 16-kHz recording stops near 8 kHz)"
                   "; active = share of frames within 40 dB of the clip's loudest.")
        c1, c2 = st.columns(2)
        c1.plotly_chart(plots.distribution_by_corpus(clips, "rms_dbfs", "Loudness (RMS)",
                                                     "dBFS", names), width="stretch",
                        key="cc_rms")
        c2.plotly_chart(plots.distribution_by_corpus(clips, "bandwidth_hz", "Bandwidth",
                                                     "Hz", names), width="stretch",
                        key="cc_bandwidth")
        c1, c2 = st.columns(2)
        c1.plotly_chart(plots.distribution_by_corpus(clips, "noise_floor_dbfs",
                                                     "Noise floor (quietest 10 % of frames)",
                                                     "dBFS", names), width="stretch",
                        key="cc_noise")
        c2.plotly_chart(plots.distribution_by_corpus(clips, "active_fraction",
                                                     "Active speech fraction", "share of "
                                                     "frames", names), width="stretch",
                        key="cc_active")
        st.plotly_chart(plots.measure_by_emotion(
            clips, "dynamic_range_db", "Loudest frame above the noise floor, per emotion",
            "dB (median)", names), width="stretch", key="cc_range_emotion")
        st.caption("Where a corpus's background noise is constant (CREMA-D), the louder "
                   "emotions rise further above it, so this range goes with the emotion. A "
                   "model can learn it as a cue; a cleaner recording then has an \"angry\" "
                   "range for every emotion. `benchmarks/floor_probe.py` measures how much "
                   "a CREMA-D model leans on it.")
        st.plotly_chart(plots.ltas_lines(ltas_table(clips, ltas, "corpus"),
                                         "Long-term average spectrum per corpus", names),
                        width="stretch", key="cc_ltas")
        pick = st.selectbox("Corpus for the spectrum per emotion", list(names),
                            format_func=lambda k: names.get(k, k), key="cc_ltas_corpus")
        per_emotion = ltas_table(clips, ltas, ("corpus", "label"))
        if pick in per_emotion.index.get_level_values("corpus"):
            st.plotly_chart(plots.ltas_lines(per_emotion.xs(pick, level="corpus"),
                                             "Long-term average spectrum per emotion: "
                                             f"{names.get(pick, pick)}"),
                            width="stretch", key="cc_ltas_emotion")
        else:
            st.info(f"No clip of {names.get(pick, pick)} could be measured.")
        st.dataframe(describe_measures(clips).rename(index=lambda k: names.get(k, k)),
                     width="stretch")
        st.caption("Medians per corpus. Spectra are averaged in dB after setting each clip's "
                   "loudest band to 0 dB, so they compare spectral shape, not level.")
