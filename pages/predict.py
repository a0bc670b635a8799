"""Predict: upload, record or pick a clip; its speech segments, an emotion timeline and
calibrated confidence from every selected model."""

from pathlib import Path

import streamlit as st

from ser import plots
from ser.audio import AudioError, accepted_formats
from ser.bundle import BundleError
from ser.card import exposure_note
from ser.crosscorpus import unseen_summary
from ser.ensemble import default_models, read_ensemble
from ser.inference import Predictor, analyse, open_clip, self_profile
from ser.segments import SegmentationError
from ser.speakers import usable
from ser.zoo import all_models
from ui import insight, voice
from ui.memo import digest, memo
from ui.state import corpus_sidebar, get_corpus, get_predictor, mic_blocked_reason, pct, settings

PLAYERS = 12  # up to this many segments get a player each; more get a chooser

st.title("🎧 Predict")
corpus_sidebar()
limit_s = settings().clip_limit
st.caption(f"Speak a sentence in an emotion (or upload a recording, up to {limit_s / 60:g} "
           "minutes) and see what every model hears. Only the speech is scored: silence and "
           "noise are left out, and each stretch of speech gets its own emotion. The models "
           "learnt mostly from acted sentences; expect them to be less sure on spontaneous "
           "speech.")

upload_tab, record_tab, corpus_tab = st.tabs(["Upload", "Record", "Corpus clip"])
source, source_name = None, None
corpus_speaker = None  # (corpus key, speaker) of a chosen corpus clip
with upload_tab:
    up = st.file_uploader("Audio file", type=list(accepted_formats()),
                          help=f"Up to 50 MB and {limit_s / 60:g} minutes. The speech in it is "
                               "found and cut into stretches of at most 5 s, each scored on "
                               "its own.")
    if up is not None:
        source, source_name = up.getvalue(), up.name
with record_tab:
    # Streamlit's own recorder: it works with any microphone the browser offers (the
    # audio-recorder component failed silently, e.g. with Chromium's fake microphone).
    try:
        insecure = mic_blocked_reason(st.context.url)
    except Exception:  # noqa: BLE001 - no browser address (e.g. a headless test run)
        insecure = None
    if insecure:
        st.warning(insecure, icon="🎙️")
    rec = st.audio_input("Record your voice (click the microphone, speak, click stop)",
                         sample_rate=16000, key="mic",
                         help="The browser asks for permission the first time. Recordings "
                              "stay on the machine that runs SER Studio.")
    st.caption("Nothing happens when you click the microphone? The browser has blocked it: "
               "allow the microphone for this site (the icon left of the address), check "
               "that a microphone is connected, and open the app on localhost or over "
               "HTTPS (see the README, *Recording from another device*).")
    if rec is not None and source is None:
        source, source_name = rec.getvalue(), "recording.wav"
with corpus_tab:
    corpus = get_corpus()
    m = corpus.manifest
    clip = st.selectbox("Clip from the corpus", ["(none)", *m["clip"].tolist()])
    if clip != "(none)" and source is None:
        row = m.set_index("clip").loc[clip]
        source, source_name = open(row["path"], "rb").read(), clip
        st.caption(f"Intended emotion: **{row['emotion']}** · speaker {row['speaker']}"
                   + ("" if corpus.is_demo else " — whether the selected models heard this "
                      "speaker in training is said below the model chooser"))
        if not corpus.is_demo:
            corpus_speaker = (row.get("corpus") or corpus.corpora[0], str(row["speaker"]))

with st.expander("Use your own model file (.pt bundle)"):
    own = st.file_uploader("SER Studio bundle", type=["pt"], key="own_bundle")
    own_predictor = None
    if own is not None:
        try:
            own_predictor = memo("own_bundle", digest(own.getvalue()),
                                 lambda: Predictor(own.getvalue()))
            st.success(f"Loaded {own_predictor.card.display_name or own_predictor.name}")
        except BundleError as err:
            st.error(f"That model file cannot be used: {err}")

voice_profile = voice.panel()

if source is None:
    st.info("Upload a file, record your voice, or pick a corpus clip to begin.")
    st.stop()

clip_key = (source_name, digest(source), limit_s)
try:
    with st.spinner("Decoding and checking the clip…"):
        clip = memo("clip", clip_key,
                    lambda: open_clip(source, source_name, max_seconds=limit_s))
except AudioError as err:
    st.error(f"**{source_name}**: {err}")
    st.stop()


def stop_with_player():
    """End the page where no verdict can be given, with the clip's player still there
    (normally it comes after the verdict)."""
    st.audio(source)
    st.stop()


q = clip.quality
# The input in one line (its waveform and mel-spectrogram are at the bottom of the page);
# the verdict comes first.
st.markdown(f"**{source_name}** · {q.duration_s:.2f} s · {clip.sr:,} Hz · "
            f"{clip.channels} channel{'s' if clip.channels > 1 else ''}"
            + (" (averaged to mono)" if clip.channels > 1 else "") + " · level "
            + ("silent" if q.peak == 0 else f"{q.rms_dbfs:.0f} dBFS RMS")
            + f" · clipped {q.clipped_fraction:.2%}")
for w in q.warnings:
    st.warning(w)

entries = {e.name: e for e in all_models()}
names = list(entries)
shipped_ens = read_ensemble()
voice_ready = usable(voice_profile)
members = [n for n in (shipped_ens.members if shipped_ens else []) if n in entries]
use_ensemble = bool(members) and st.toggle(
    f"Shipped ensemble ({len(members)} models)", key="use_ensemble",
    help="Average the probabilities of the shipped ensemble's models instead of the single "
         "default model: a little more accurate on CREMA-D's test actors, and "
         f"{len(members)} times the scoring work.")
if use_ensemble:
    default_names, why = members, f"the shipped ensemble ({shipped_ens.selection})"
else:
    default_names, why = default_models(voice=voice_ready)
default = [n for n in default_names if n in entries] or names[:3]
mode = "ensemble" if use_ensemble else "voice" if voice_ready else "plain"
adapt = voice_ready and st.toggle(
    "Adapt the models to my voice", value=True, key="adapt_voice",
    help="Every model that was not trained with speaker normalisation is shifted, class by "
         "class, so that your takes get the answers an ordinary mix of emotions gets. "
         "It assumes your takes cover several emotions; switch it off to compare.")
chosen = st.multiselect("Models", names, default=default, key=f"models-{mode}",
                        help=f"By default {why}." if why else None)
if corpus_speaker and chosen:
    note = exposure_note({n: entries[n].card for n in chosen}, *corpus_speaker)
    if note:
        st.caption(note)
if shipped_ens and shipped_ens.test and sorted(chosen) == sorted(shipped_ens.members):
    t = shipped_ens.test
    st.caption(f"Shipped ensemble ({shipped_ens.selection}): test accuracy "
               f"{pct(t.accuracy)}, UAR {pct(t.uar)} on {t.n:,} clips of unseen "
               f"speakers ({shipped_ens.protocol_caption()}).")
find_speech = st.toggle("Score speech only", value=True, key="vad",
                        help="Find the speech with a voice activity detector (Silero VAD) and "
                             "score each stretch of it; silence and noise get no emotion. "
                             "Off: the whole clip is scored in equal parts of at most 5 s.")
if not chosen and own_predictor is None:
    st.info("No model selected. Shipped models live in `models/`; train one on the Train page.")
    stop_with_player()

models = [(n, lambda path=entries[n].bundle: get_predictor(path)) for n in chosen]
if own_predictor is not None:
    models.append((f"{own_predictor.name} (uploaded)", lambda: own_predictor))
analysis_key = (clip_key, find_speech, digest(own.getvalue()) if own is not None else None,
                tuple((n, str(entries[n].bundle), Path(entries[n].bundle).stat().st_mtime)
                      for n in chosen),
                (voice_profile.takes, round(voice_profile.seconds, 3),
                 tuple(voice_profile.labels)) if voice_profile else None, adapt)


def run_analysis():
    bar = st.progress(0.0, text="Finding speech…")
    try:
        return analyse(clip, models, segments=find_speech, ensemble=shipped_ens,
                       progress=bar.progress, voice=voice_profile, adapt=adapt)
    finally:
        bar.empty()


try:
    a = memo("analysis", analysis_key, run_analysis)
except SegmentationError as err:
    st.error(f"Speech could not be segmented: {err} Switch off 'Score speech only' to score "
             "the whole clip.")
    stop_with_player()
for name, message in a.errors:
    st.error(f"{name}: {message}")
if a.skipped and a.models:
    st.info(f"Left out: {', '.join(a.skipped)} — speaker-normalised models need a few clips "
            "of this voice first (open “Calibrate to my voice” above"
            + (": your profile is still too short, give at least 3 takes or 8 s of speech)."
               if voice_profile is not None else ")."))
if a.voice_source:
    st.caption(f"Speaker-normalised models read this clip relative to the voice statistics "
               f"from {a.voice_source}.")
if a.adapted:
    st.caption(f"Adapted to your voice ({voice_profile.takes} takes, "
               f"{voice_profile.seconds:.0f} s): "
               + (', '.join(a.adapted) if len(a.adapted) <= 3 else f"{len(a.adapted)} "
                  "models") + ". Each model first re-centres its inner layers halfway on "
               "your takes (BatchNorm statistics, where it has them), then shifts its answers "
               "so that your takes get, on average, the answers an ordinary mix of emotions "
               "gets (README: *Calibrating to a voice*).")
if a.refitted:
    known = [voice_profile.labels[i] for i in voice_profile.labelled]
    checks = []
    for name in a.refitted:
        right_n = get_predictor(entries[name].bundle).take_check(voice_profile) \
            if name in entries else None
        if right_n and right_n[1]:
            checks.append(f"{name} names {right_n[0]} of {right_n[1]} of your takes right "
                          "when each is held out of the fit (chance: about 1 in 6)")
    st.caption(f"Fitted to your {len(known)} labelled takes: " + ", ".join(a.refitted)
               + " — the final layer learnt which emotion each take meant, held close to what "
               "it learnt from the corpora (README: *Labelled takes*)."
               + (" Check: " + "; ".join(checks) + "." if checks else ""))
elif a.ok and voice_ready and not adapt:
    st.caption("Not adapted to your voice: the models answer as for any new voice.")
if not a.voice_source and not a.adapted and a.ok and voice_profile is None:
    st.caption("This voice is new to the models, so the verdict is less reliable than the "
               "test figures suggest (they were measured on corpora the models know). "
               + unseen_summary({n: Path(entries[n].bundle).parent for n in chosen}) +
               " Calibrating to your voice (a few takes in different moods) adapts the "
               "models to how you usually sound.")
if not a.ok:
    st.warning(a.message)
    stop_with_player()

st.subheader("Verdict")
c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
who = f"Ensemble of {len(a.models)} models" if len(a.models) > 1 else a.models[0].name
if a.uncertain:
    (l1, p1), (l2, p2) = a.top2
    c1.markdown(f"## UNCERTAIN  \n**{l1}** {pct(p1)} or **{l2}** {pct(p2)} · {who}")
else:
    c1.markdown(f"## {a.label.upper()}  \n{who}")
c2.metric("Confidence", pct(a.confidence),
          help="Calibrated probability of the leading emotion, over the scored speech "
               "weighted by duration." if a.calibrated else
               "Raw softmax output of uncalibrated models: usually overstated.")
if len(a.models) > 1:
    c3.metric("Models agreeing", f"{a.agreement:.0%}",
              help="Share of the models whose own leading emotion is the verdict's.")
else:  # one model always agrees with itself: show what it found second instead
    (l2, p2) = a.top2[1]
    c3.metric(f"Runner-up · {pct(p2)}", l2,
              help="The emotion with the second highest probability, and that probability.")
c4.metric("Speech scored" if a.segmented else "Audio scored", f"{a.speech_s:.1f} s",
          help=f"{len(a.segments)} segment(s) of a {a.duration_s:.1f} s clip.")
if a.uncertain:
    st.info(f"No single emotion is named: the leading one's probability ({pct(a.confidence)}) "
            f"is below the threshold ({pct(a.threshold)}) under which, on validation clips, "
            "predictions were right less often than intended. The two leading emotions are "
            "shown instead.")
st.caption(f"Confidence: {a.calibration_note}.")
if a.uncalibrated_models and len(a.models) > 1:
    st.caption("Uncalibrated (raw softmax, T = 1): " + ", ".join(a.uncalibrated_models))
if a.disagree:
    votes = ", ".join(f"{n} × {lab}" for lab, n in a.votes.items())
    (st.warning if a.agreement <= 0.5 else st.caption)(f"The models disagree: {votes}.")
st.plotly_chart(plots.probability_bars(
    a.clip_probs, "Probabilities" + (" (calibrated)" if a.calibrated else " (uncalibrated)")
    + (", speech only" if a.segmented else "") + ", weighted by duration"), width="stretch")

st.audio(source)  # after the verdict: the player's media request must not delay it

st.subheader("Emotion over time")
timeline = a.table()
st.plotly_chart(plots.segment_timeline(
    clip.y, clip.sr, timeline, a.threshold,
    title="Speech segments and their emotion" if a.segmented else
    "Equal parts of the clip and their emotion"), width="stretch", key="timeline")
st.dataframe(timeline, hide_index=True, width="stretch")
st.download_button("Download the timeline (CSV)", timeline.to_csv(index=False),
                   file_name=f"{Path(clip.name).stem}-timeline.csv", mime="text/csv",
                   on_click="ignore", key="timeline_csv")


def segment_label(i: int) -> str:
    r = timeline.iloc[i]
    verdict = (f"uncertain ({r['emotion']} / {r['runner_up']})" if r["uncertain"]
               else f"{r['emotion']} {pct(r['confidence'])}")
    return f"#{i + 1}  {r['start_s']:.2f}–{r['end_s']:.2f} s: {verdict}"


with st.expander("Listen to the segments", expanded=len(a.segments) <= 3):
    if len(a.segments) <= PLAYERS:
        for i, seg in enumerate(a.segments):
            st.caption(segment_label(i))
            st.audio(clip.samples(seg), sample_rate=clip.sr)
    else:
        i = st.selectbox("Segment", range(len(a.segments)), format_func=segment_label,
                         key="segment")
        st.audio(clip.samples(a.segments[i]), sample_rate=clip.sr)

st.subheader("Every model")
probs = a.model_probs()
notes = []
for sm in a.models:
    acc = sm.card.test.accuracy if sm.card.test else None
    cal = f"T = {sm.temperature:.2f}" if sm.calibrated else "uncalibrated"
    notes.append(f"{sm.card.display_name or sm.card.arch}; test accuracy {pct(acc)} "
                 f"({sm.card.protocol_caption()}); {cal}")
st.plotly_chart(plots.model_probabilities([sm.name for sm in a.models], probs, notes,
                                          title="What each model hears (its top emotion "
                                                "boxed; hover for its test score)"),
                width="stretch", key="every_model")
with st.expander("Probabilities and each model's test score as a table"):
    st.dataframe(a.model_table().assign(**{"test score": notes}), hide_index=True,
                 width="stretch")

# Lazy: computed only while the expander is open (opening it reruns the page).
listen_box = st.expander("Where each model listens", key="listen_open", on_change="rerun")
with listen_box:
    st.caption("Grad-CAM on the mel-spectrogram for models that read it; integrated gradients "
               "over the 169 FS1 values, by family, for models that read the summary. One "
               "speech segment at a time (its first 5 s), prepared exactly as for the verdict.")
    listen = [sm.name for sm in a.models if sm.name in entries]
    if listen_box.open and not listen:
        st.info("Only shipped or trained models can be opened here.")
    elif listen_box.open:
        pair = st.multiselect("Models (one or two)", listen, default=listen[:1],
                              max_selections=2, key="listen_models")
        seg_i = st.selectbox("Segment", range(len(a.segments)), format_func=segment_label,
                             key="listen_segment") if len(a.segments) > 1 else 0
        piece = clip.samples(a.segments[seg_i])
        # Speaker-normalised models read the clip with the voice statistics the verdict used.
        listen_voice = (voice_profile if voice_ready else
                        self_profile(clip, a.segments) if a.voice_source else None)
        piece_key = f"{clip_key[1]}:{seg_i}:{a.segments[seg_i].start_s:.3f}"
        for col, name in zip(st.columns(max(1, len(pair))), pair):
            with col:
                # ...and the other models answer as adapted to the voice when the verdict was.
                own = listen_voice if entries[name].card.speaker_normalised else (
                    voice_profile if adapt else None)
                insight.attribution_panel(name, entries[name].bundle, piece, clip.sr,
                                          clip=piece_key, key=f"listen-{name}", voice=own)

st.subheader("Input")
# Drawn on request: the timeline above already shows the waveform, and two more charts
# would delay every verdict.
if st.toggle("Show the input's waveform and mel-spectrogram", key="show_input"):
    c1, c2 = st.columns(2)
    c1.plotly_chart(plots.waveform(clip.y, clip.sr), width="stretch", key="input_waveform")
    mel, mel_hop = clip.mel_display()
    c2.plotly_chart(plots.mel_image(mel, hop=mel_hop, title="Mel-spectrogram (whole clip)"),
                    width="stretch", key="input_mel")
