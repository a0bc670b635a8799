"""The "Calibrate to my voice" panel of the Predict page.

A visitor records (or uploads) a few takes; their speech goes into a `VoiceProfile` kept in
this browser session only. Speaker-normalised models then read every new clip relative to
that voice. Nothing is written to disk unless the visitor saves a named profile.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ser import config
from ser.audio import AudioError, accepted_formats, load_audio
from ser.corpora import emotion_from_name
from ser.segments import SegmentationError
from ser.speakers import GUIDE_ORDER, VoiceProfile, profile_path, reliability, saved_profiles
from ui.memo import digest
from ui.state import public

_KEY = "voice_profile"
_SEEN = "voice_takes_seen"
_NAMES = "voice_take_names"  # take index → the file it came from (this session's takes only)
LEVEL_ICON = {"good": "🟢", "fair": "🟡", "poor": "🔴"}
#: How the guide words each mood of the guided enrolment (`ser.speakers.GUIDE_ORDER`: one
#: take per emotion in that order, then round again; README, *Calibrating to a voice*).
GUIDE = ("angry", "disgusted", "fearful", "happy", "neutral", "sad")
#: The label each guided mood stands for.
GUIDE_LABEL = dict(zip(GUIDE, GUIDE_ORDER))
NOT_SAID = "(not said)"
#: Take label boxes side by side. Each row is its own set of columns, because a phone stacks
#: columns: one set of 4 for all takes read 1, 5, 9, 2, 6, 10, … there.
TAKES_PER_ROW = 4
SENTENCE = "I'll be there in ten minutes"


def next_take(takes: int) -> str:
    """What the visitor is asked to record next, after ``takes`` takes."""
    mood = GUIDE[takes % len(GUIDE)]
    return (f"**Take {takes + 1}:** say “{SENTENCE}” (or any sentence) as if you were "
            f"**{mood}**.")


def label_from_name(name: str) -> str | None:
    """The emotion an uploaded take's file name states ("angry.wav", "take2-sad.m4a",
    "Fearful 1.ogg"), when it names exactly one; else the one a corpus's own naming states
    ("1001_DFA_ANG_XX.wav", "DC_sa01.opus": a class calibrating with corpus clips); None
    otherwise."""
    import re

    words = set(re.split(r"[^a-z]+", Path(name).stem.lower()))
    found = {lab for lab in config.LABELS if lab in words} | {
        GUIDE_LABEL[mood] for mood in GUIDE if mood in words}
    if not found:
        return emotion_from_name(name)
    return found.pop() if len(found) == 1 else None


def current() -> VoiceProfile | None:
    """The session's voice profile (None until a take with speech was added)."""
    p = st.session_state.get(_KEY)
    return p if p is not None and p.clips else None


def _add_take(data: bytes, name: str, label: str | None = None) -> float:
    """Add one take to the session's voice; the seconds of speech it added (0 when it was
    seen before or held none, which is said on the page)."""
    seen = st.session_state.setdefault(_SEEN, set())
    key = digest(data)
    if key in seen:
        return 0.0
    seen.add(key)
    try:
        y, sr = load_audio(data)
    except AudioError as err:
        st.error(f"{name}: {err}")
        return 0.0
    profile = st.session_state.setdefault(_KEY, VoiceProfile())
    try:
        added = profile.add_recording(y, sr, label)
    except SegmentationError as err:
        st.error(f"{name}: speech could not be found ({err}).")
        return 0.0
    if added == 0:
        st.warning(f"{name}: no speech found in this take; it was not added.")
    else:
        st.session_state.setdefault(_NAMES, {})[profile.takes - 1] = name
    return float(added)


def added_message(added: list[tuple[str, float]]) -> str:
    """One line for the (one or more) takes a run added, as ``(name, seconds of speech)``:
    a batch of uploaded takes gets one notice, not one per file."""
    if len(added) == 1:
        name, seconds = added[0]
        return f"Added {seconds:.1f} s of speech from {name}."
    return f"Added {len(added)} takes: {sum(s for _, s in added):.1f} s of speech."


def panel() -> VoiceProfile | None:
    """Draw the panel; returns the profile to use (None: not calibrated)."""
    profile = current()
    title = ("🎙️ Calibrated to your voice" if profile else "🎙️ Calibrate to my voice "
             "(recommended for your own recordings)")
    with st.expander(title, expanded=False):
        st.caption(
            "Models that hear a voice for the first time mostly answer from how the voice and "
            "the microphone sound, not from the emotion. Record a few sentences in different "
            "moods — best one each angry, disgusted, fearful, happy, neutral and sad, or more "
            "(or upload one 20–60 s recording of varied free speech): every model is then "
            "adapted to *your* usual sound, and the speaker-normalised models compare each "
            "new clip with it. Takes in a single mood would bias the models against that "
            "mood. A recorded take is labelled with the mood asked for (change it below if "
            "it came out otherwise); with labelled takes the voice model also learns how "
            "*you* sound in each emotion. The takes stay in this browser session only, "
            "unless you save them as a named profile below.")
        guide = st.empty()  # filled once this run's takes are in
        rec_col, up_col = st.columns(2)
        with rec_col:
            take = st.audio_input("Record a take", sample_rate=16000,
                                  key=f"enrol_recorder{st.session_state.get('voice_gen', 0)}")
            if take is not None:
                # A recorded take is meant as the mood the guide asked for (editable below).
                asked = GUIDE[(current().takes if current() else 0) % len(GUIDE)]
                seconds = _add_take(take.getvalue(), "recorded take", GUIDE_LABEL[asked])
                if seconds:
                    st.toast(added_message([("your recording", seconds)]))
        with up_col:
            files = st.file_uploader("…or upload takes", accept_multiple_files=True,
                                     type=list(accepted_formats()),
                                     key=f"enrol_files{st.session_state.get('voice_gen', 0)}")
            added = []
            with st.spinner("Finding the speech in the takes…"):
                for f in files or []:  # a file named after an emotion starts with that label
                    seconds = _add_take(f.getvalue(), f.name, label_from_name(f.name))
                    if seconds:
                        added.append((f.name, seconds))
            if added:
                st.toast(added_message(added))
        profile = current()
        guide.markdown(next_take(profile.takes if profile else 0))
        if profile:
            level, sentence = reliability(profile.seconds, profile.takes)
            c = st.columns(3)
            c[0].metric("Takes", profile.takes)
            c[1].metric("Speech", f"{profile.seconds:.1f} s")
            c[2].metric("Reliability", f"{LEVEL_ICON[level]} {level}")
            st.caption(sentence)
            _take_labels(profile)
            if st.button("Forget my voice", key="voice_forget"):
                st.session_state.pop(_KEY, None)
                st.session_state.pop(_NAMES, None)
                # Fresh widgets (new keys) drop the uploaded and recorded takes, which
                # would otherwise be added again on the next run.
                st.session_state["voice_gen"] = st.session_state.get("voice_gen", 0) + 1
                st.session_state[_SEEN] = set()
                st.rerun()
        _saved_profiles(profile)
    return current()


def _take_labels(profile: VoiceProfile) -> None:
    """One box per take: the emotion it was meant to carry (recorded takes start with the
    mood the guide asked for, uploaded ones with the emotion their file name states, else
    "not said")."""
    st.markdown("**What each take meant** — with three or more takes of at least two "
                "emotions, the voice model's read-out is fitted to them")
    gen = st.session_state.get("voice_gen", 0)
    options = [NOT_SAID, *config.LABELS]
    names = st.session_state.get(_NAMES, {})
    for i, label in enumerate(profile.labels):
        if i % TAKES_PER_ROW == 0:  # a row at a time: a phone stacks it in take order
            cols = st.columns(TAKES_PER_ROW)
        title = f"Take {i + 1}" + (f" · {names[i]}" if names.get(i) else "")
        pick = cols[i % TAKES_PER_ROW].selectbox(title, options,
                                                 index=options.index(label or NOT_SAID),
                                                 key=f"take_label{gen}_{i}")
        profile.set_label(i, None if pick == NOT_SAID else pick)
    known = [profile.labels[i] for i in profile.labelled]
    if profile.labelled_ready:
        st.caption(f"{len(known)} labelled takes ({len(set(known))} emotions): the voice "
                   "model's final layer is refitted to them, held close to what it learnt "
                   "from the corpora (README, *Labelled takes*). Wrong labels teach it "
                   "wrong answers; set a take to “not said” when unsure.")
    else:
        st.caption("Label at least three takes of two or more emotions to fit the voice "
                   "model to them; until then only the voice's statistics are used.")


def _saved_profiles(profile: VoiceProfile | None) -> None:
    if public():  # a shared server: no visitor's voice is written or offered to others
        if profile:
            st.caption("Profiles cannot be saved on this public demo: your takes stay in "
                       "this browser session and are gone when you close it.")
        return
    names = saved_profiles()
    c1, c2 = st.columns(2)
    with c1:
        if names:
            pick = st.selectbox("Load a saved profile", ["(none)", *names], key="voice_load")
            if pick != "(none)" and st.button("Load", key="voice_load_btn"):
                try:
                    st.session_state[_KEY] = VoiceProfile.load(profile_path(pick))
                    st.session_state.pop(_NAMES, None)  # a saved profile keeps no file names
                    # Fresh take boxes: the loaded takes' labels, not the last profile's.
                    st.session_state["voice_gen"] = st.session_state.get("voice_gen", 0) + 1
                    st.rerun()
                except ValueError as err:
                    st.error(str(err))
    with c2:
        if profile:
            name = st.text_input("Save as a named profile (written to the server's disk)",
                                 key="voice_name", max_chars=40)
            if st.button("Save profile", key="voice_save", disabled=not name):
                try:
                    path = profile.save(profile_path(name))
                    st.success(f"Saved as {path.stem}.")
                except (ValueError, OSError) as err:
                    st.error(f"Could not save the profile: {err}")
