"""The Predict page's "Calibrate to my voice" panel, through the real page (AppTest):
takes uploaded into a session profile, speaker-normalised models used only with it,
named profiles saved and loaded, and the voice defaults from models/default.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from app_helpers import open_page
from predict_helpers import clip_and_takes, place, voice_set, wav
from streamlit.testing.v1 import AppTest

from ser.ensemble import default_models
from ser.speakers import VoiceProfile, profile_path, saved_profiles


@pytest.fixture()
def voice_models(tmp_path, monkeypatch):
    return voice_set(tmp_path, monkeypatch)


def predict_page() -> AppTest:
    return open_page("pages/predict.py", clean=True)


def uploader(at: AppTest, key: str):
    return next(u for u in at.get("file_uploader") if u.key == key) if key else \
        at.file_uploader[0]


def test_voice_defaults_from_default_json(voice_models):
    assert default_models(voice_models) == (["tiny.plain"], "the plain model")
    assert default_models(voice_models, voice=True) == (["tiny.spk", "tiny.plain"], "both")


def test_cli_default_with_a_voice_uses_the_voice_set(tmp_path, voice_models, speech):
    """Regression: `predict default --voice …` scored only the general set, while the Predict
    page switched to default.json's "voice" set once calibrated."""
    import subprocess
    import sys

    from ser.ensemble import bundle_paths

    assert [p.parent.name for p in bundle_paths("default")] == ["tiny.plain"]
    assert [p.parent.name for p in bundle_paths("default", voice=True)] == ["tiny.spk",
                                                                            "tiny.plain"]
    clip, takes = clip_and_takes(tmp_path, speech)
    cmd = [sys.executable, "-m", "ser", "predict", "default", str(clip), "--json"]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    assert set(json.loads(plain.stdout)[str(clip)]) == {"tiny.plain"}
    voiced = subprocess.run(cmd + takes, capture_output=True, text=True, timeout=300)
    assert voiced.returncode == 0, voiced.stderr
    assert set(json.loads(voiced.stdout)[str(clip)]) == {"tiny.spk", "tiny.plain"}


def test_home_names_the_set_used_once_a_voice_is_calibrated(demo_root, voice_models):
    at = open_page("pages/welcome.py", clean=True)
    text = " ".join(m.value for m in at.markdown)
    assert "**What Predict uses by default** (★ below): `tiny.plain` — the plain model." in text
    assert "**Once you calibrate to your voice** (a few takes on Predict): `tiny.spk`, " \
           "`tiny.plain` — both." in text


def test_without_a_voice_the_speaker_normalised_model_is_left_out(demo_root, voice_models,
                                                                 speech):
    at = predict_page()
    y, _ = place([0.5, speech[0], 0.5])
    at.file_uploader[0].set_value(("one.wav", wav(y), "audio/wav"))
    at.run()
    assert not at.exception
    assert at.multiselect[0].value == ["tiny.plain"]
    at.multiselect[0].set_value(["tiny.plain", "tiny.spk"]).run()
    assert not at.exception
    assert any("Left out: tiny.spk" in i.value for i in at.info), [i.value for i in at.info]
    assert any("less reliable" in c.value for c in at.caption)


def test_an_unknown_voice_is_told_how_the_model_did_on_corpora_it_never_heard(
        demo_root, voice_models, speech):
    """The caption for a new voice quotes the default model's stored cross-corpus UAR
    (unseen corpora only; held-out speakers of its own corpus do not count)."""
    from ser.crosscorpus import Cell, write

    share = dict.fromkeys(["angry", "disgust", "fear", "happy", "neutral", "sad"], 1 / 6)
    write(voice_models / "tiny.plain", [
        Cell("crema-d", "held-out speakers", 100, 0.7, 0.7, predicted_share=share),
        Cell("tess", "unseen", 60, 0.31, 0.312, predicted_share=share),
        Cell("savee", "unseen", 60, 0.4, 0.398, predicted_share=share)])
    at = predict_page()
    y, _ = place([0.5, speech[0], 0.5])
    at.file_uploader[0].set_value(("one.wav", wav(y), "audio/wav")).run()
    assert not at.exception
    text = " ".join(c.value for c in at.caption)
    assert "tiny.plain: 31–40 % UAR on TESS, SAVEE" in text, text
    assert "CREMA-D" not in text.split("never heard")[1]


def test_calibrating_to_a_voice_then_scoring_with_it(demo_root, voice_models, speech):
    at = predict_page()
    takes = uploader(at, "enrol_files0")
    takes.set_value([(f"take{i}.wav", wav(place([0.4, speech[i], 0.4])[0]), "audio/wav")
                     for i in range(3)])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Takes"] == "3"
    assert float(metrics["Speech"].split()[0]) > 2.0
    assert "fair" in metrics["Reliability"]
    # one notice for the batch, not one per file (ten takes stacked ten toasts over the page)
    assert [t.value for t in at.toast] == [
        f"Added 3 takes: {float(metrics['Speech'].split()[0]):.1f} s of speech."]
    # the guided enrolment asks for the next emotion in turn
    assert any("Take 4:" in m.value and "**happy**" in m.value for m in at.markdown)
    y, _ = place([0.5, speech[4], 0.5])
    at.file_uploader[0].set_value(("one.wav", wav(y), "audio/wav"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert sorted(at.multiselect[0].value) == ["tiny.plain", "tiny.spk"]
    assert any("voice statistics from enrolment" in c.value for c in at.caption)
    assert not any("Left out" in i.value for i in at.info)
    # Save it under a name: it appears in the list; the session profile can be forgotten.
    at.text_input(key="voice_name").set_value("my voice").run()
    at.button(key="voice_save").click().run()
    assert not at.exception
    assert saved_profiles() == ["my voice"]
    assert VoiceProfile.load(profile_path("my voice")).takes == 3
    at.button(key="voice_forget").click().run()
    assert not at.exception
    assert at.multiselect[0].value == ["tiny.plain"]
    assert not any(m.label == "Takes" for m in at.metric)
    # ...and a saved profile loads back into the session.
    at.selectbox(key="voice_load").set_value("my voice").run()
    at.button(key="voice_load_btn").click().run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Takes"] == "3"
    # a saved profile keeps no file names: its take boxes are numbered only
    assert sorted(b.label for b in at.selectbox if b.label.startswith("Take ")) == [
        "Take 1", "Take 2", "Take 3"]


def test_an_enrolled_voice_adapts_the_plain_model_and_can_be_switched_off(
        demo_root, voice_models, speech):
    at = predict_page()
    uploader(at, "enrol_files0").set_value(
        [(f"take{i}.wav", wav(place([0.4, speech[i], 0.4])[0]), "audio/wav") for i in range(3)])
    at.run()
    y, _ = place([0.5, speech[4], 0.5])
    at.file_uploader[0].set_value(("one.wav", wav(y), "audio/wav")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="adapt_voice").value is True
    text = " ".join(c.value for c in at.caption)
    assert "Adapted to your voice (3 takes" in text and "tiny.plain" in text.split(
        "Adapted to your voice")[1], text
    at.toggle(key="adapt_voice").set_value(False).run()
    assert not at.exception
    text = " ".join(c.value for c in at.caption)
    assert "Not adapted to your voice" in text and "Adapted to your voice (" not in text


def test_profile_names_cannot_leave_the_profiles_folder(tmp_path):
    for bad in ("../escape", "/etc/passwd", "", "a" * 41, ".hidden"):
        with pytest.raises(ValueError):
            profile_path(bad, tmp_path)
    assert profile_path("Ana 2", tmp_path) == tmp_path / "Ana 2.npz"


def test_profiles_round_trip_and_a_damaged_file_is_refused(tmp_path):
    p = VoiceProfile(clips=[np.ones(100, np.float32), np.zeros(50, np.float32)])
    back = VoiceProfile.load(p.save(tmp_path / "v.npz"))
    assert [len(c) for c in back.clips] == [100, 50] and back.sample_rate == p.sample_rate
    (tmp_path / "bad.npz").write_bytes(b"not a profile")
    with pytest.raises(ValueError, match="not a saved voice profile"):
        VoiceProfile.load(tmp_path / "bad.npz")
