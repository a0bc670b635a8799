"""Labelled takes: a visitor says which emotion each calibration take meant, and the voice
models' final layer is refitted to them (`ser.training.adapt_classifier`,
`ser.inference.Predictor.refitted`) — in the library, the CLI and the Predict page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import open_page
from predict_helpers import place, voice_set, wav

from ser import config
from ser.inference import Predictor
from ser.models import create_model
from ser.speakers import VoiceProfile
from ser.training import adapt_classifier

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def models(tmp_path, monkeypatch):
    return voice_set(tmp_path, monkeypatch, spk="voice.spk", plain="cnn.plain",
                     spk_arch="voicelin")


def _takes(n: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 1792, generator=g)
    y = np.arange(n) % config.N_CLASSES
    x[torch.arange(n), 0, torch.from_numpy(y)] += 4.0  # a direction per emotion
    return (x,), y


def test_refitting_learns_the_takes_and_leaves_the_trained_model_alone():
    torch.manual_seed(0)
    model = create_model("voicelin").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs, y = _takes()
    fitted = adapt_classifier(model, inputs, y, strength=1.0)
    with torch.no_grad():
        acc = (fitted(*inputs).argmax(1).numpy() == y).mean()
        acc0 = (model(*inputs).argmax(1).numpy() == y).mean()
    assert acc == 1.0 and acc0 < 0.5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # A strong pull keeps the trained read-out almost as it was.
    held = adapt_classifier(model, inputs, y, strength=1e7)
    assert torch.allclose(held.head[-1].weight, model.head[-1].weight, atol=1e-4)


def test_refitting_refuses_what_it_cannot_do():
    model = create_model("voicelin").eval()
    inputs, y = _takes()
    with pytest.raises(ValueError, match="labels for"):
        adapt_classifier(model, inputs, y[:-1])
    with pytest.raises(ValueError, match="six emotions"):
        adapt_classifier(model, inputs, y + 6)
    with pytest.raises(ValueError, match="positive"):
        adapt_classifier(model, inputs, y, strength=0)

    class Doubled(torch.nn.Module):  # its output is not the final layer's
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return 2 * self.inner(x)

    with pytest.raises(ValueError, match="not its final linear layer"):
        adapt_classifier(Doubled(), inputs, y)


def test_a_profile_keeps_its_labels_on_disk_and_refuses_unknown_ones(tmp_path):
    p = VoiceProfile()
    p.add(np.ones(800, np.float32), 22050, "angry")
    p.add(np.ones(800, np.float32), 22050)
    assert p.labels == ["angry", None] and p.labelled == [0] and not p.labelled_ready
    with pytest.raises(ValueError, match="not one of the six"):
        p.add(np.ones(10, np.float32), 22050, "calm")
    with pytest.raises(ValueError, match="not one of the six"):
        p.set_label(1, "bored")
    p.set_label(1, "sad")
    p.add(np.ones(800, np.float32), 22050, "sad")
    assert p.labelled_ready
    back = VoiceProfile.load(p.save(tmp_path / "v.npz"))
    assert back.labels == ["angry", "sad", "sad"]
    # A profile saved before takes had labels loads with none.
    np.savez(tmp_path / "old.npz", sample_rate=np.int64(22050), lengths=np.array([3, 2]),
             samples=np.zeros(5, np.float32))
    assert VoiceProfile.load(tmp_path / "old.npz").labels == [None, None]
    np.savez(tmp_path / "bad.npz", sample_rate=np.int64(22050), lengths=np.array([5]),
             samples=np.zeros(5, np.float32), labels=np.array(["furious"]))
    with pytest.raises(ValueError, match="damaged"):
        VoiceProfile.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "extra.npz", sample_rate=np.int64(22050), lengths=np.array([5]),
             samples=np.zeros(5, np.float32), labels=np.array(["sad", "angry"]))
    with pytest.raises(ValueError, match="2 labels for 1 takes"):
        VoiceProfile.load(tmp_path / "extra.npz")


def test_labelled_takes_refit_the_voice_model_only(models, speech):
    voice_p = Predictor(models / "voice.spk" / "model.pt")
    cnn_p = Predictor(models / "cnn.plain" / "model.pt")
    plain, labelled = VoiceProfile(), VoiceProfile()
    for y, lab in zip(speech[1:4], ("angry", "sad", "happy")):
        plain.add(y, 16000)
        labelled.add(y, 16000, lab)
    assert voice_p.refitted(plain) is None
    fitted = voice_p.refitted(labelled)
    assert fitted is not None and fitted is not voice_p.model
    assert cnn_p.refitted(labelled) is None  # the CNNs keep BatchNorm + offset
    clip = speech[0]
    a = voice_p.predict_samples(clip, 16000, voice=plain).probs
    b = voice_p.predict_samples(clip, 16000, voice=labelled).probs
    c = voice_p.predict_samples(clip, 16000, voice=labelled, refit=False).probs
    assert not np.allclose(a, b) and np.allclose(a, c, atol=1e-6)
    # The takes the model was fitted to are now more likely to get their own labels (the
    # fit lowers their summed cross-entropy; the pull to the trained weights can only cost).
    def own_log_prob(voice):
        return sum(np.log(voice_p.predict_samples(y, 16000, voice=voice).probs[
            config.LABELS.index(lab)]) for y, lab in zip(speech[1:4], ("angry", "sad", "happy")))

    assert own_log_prob(labelled) > own_log_prob(plain)
    # The held-out check scores each take by a read-out fitted to the other two.
    right, scored = voice_p.take_check(labelled)
    assert scored == 3 and 0 <= right <= 3
    assert voice_p.take_check(plain) is None and cnn_p.take_check(labelled) is None
    labelled.set_label(2, "sad")  # angry, sad, sad: held out, the angry take leaves one
    assert voice_p.take_check(labelled)[1] == 2


def test_cli_reads_labelled_takes(tmp_path, models, speech):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav(place([0.3, speech[0], 0.3])[0]))
    args = []
    for i, lab in zip((1, 2, 3), ("angry", "sad", "happy")):
        take = tmp_path / f"take{i}.wav"
        take.write_bytes(wav(place([0.3, speech[i], 0.3])[0]))
        args += ["--voice", f"{lab}={take}"]
    env = {**__import__("os").environ, "SER_MODELS_DIR": str(models)}
    out = subprocess.run([sys.executable, "-m", "ser", "predict", "voice.spk", str(clip),
                          *args, "--json"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 take(s)" in out.stderr and "3 labelled" in out.stderr
    fitted = json.loads(out.stdout)[str(clip)]["voice.spk"]["probs"]
    plain_args = [a.split("=", 1)[-1] if a != "--voice" else a for a in args]
    out2 = subprocess.run([sys.executable, "-m", "ser", "predict", "voice.spk", str(clip),
                           *plain_args, "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert out2.returncode == 0, out2.stderr[-2000:]
    assert "labelled" not in out2.stderr
    assert json.loads(out2.stdout)[str(clip)]["voice.spk"]["probs"] != fitted


def test_an_uploaded_take_named_after_an_emotion_starts_with_that_label():
    from ui.voice import label_from_name

    assert label_from_name("angry.wav") == "angry"
    assert label_from_name("take2-Sad.m4a") == "sad"
    assert label_from_name("Fearful 1.ogg") == "fear"
    assert label_from_name("disgusted_take.wav") == "disgust"
    assert label_from_name("take0.wav") is None
    assert label_from_name("happy-or-sad.wav") is None  # two emotions: not said
    assert label_from_name("sadness.wav") is None  # whole words only
    # A class calibrating with corpus clips: the corpus's own naming states the emotion.
    assert label_from_name("1001_DFA_ANG_XX.wav") == "angry"
    assert label_from_name("JK_sa01.opus") == "sad"
    assert label_from_name("03-01-04-01-01-01-12.wav") == "sad"  # RAVDESS
    assert label_from_name("03a01Fa.wav") == "happy"  # EmoDB
    assert label_from_name("dis-m2-l1.wav") == "disgust"  # EMOVO


def test_corpus_names_state_their_emotion_only_when_distinctive():
    """`ser.corpora.emotion_from_name` reads the named corpora's schemes from the name
    alone: labels outside the six, and names that fit only with a folder, say nothing."""
    from ser.corpora import emotion_from_name

    assert emotion_from_name("YAF_dog_fear.wav") == "fear"  # TESS
    assert emotion_from_name("SF2_F3_N07.wav") == "neutral"  # URDU
    assert emotion_from_name("JK_su04.opus") is None  # surprise: outside the six
    assert emotion_from_name("03-01-02-01-01-01-12.wav") is None  # RAVDESS calm
    assert emotion_from_name("03a01La.wav") is None  # EmoDB boredom
    assert emotion_from_name("a01.wav") is None  # SAVEE's release names need their folder
    assert emotion_from_name("recording.m4a") is None


def page_with_takes(speech: list, n: int):
    """The Predict page with ``n`` takes uploaded in its calibration panel (take0.wav, …)."""
    at = open_page("pages/predict.py", clean=True)
    up = next(u for u in at.get("file_uploader") if u.key == "enrol_files0")
    up.set_value([(f"take{i}.wav", wav(place([0.4, speech[i], 0.4])[0]), "audio/wav")
                  for i in range(n)])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_take_label_boxes_come_in_take_order_when_a_phone_stacks_them(demo_root, models,
                                                                      speech):
    """Regression: the boxes were spread over one set of 4 columns, which a phone stacks,
    so six takes read 1, 5, 2, 6, 3, 4 there. Each row of boxes is now its own set of
    columns: in page order (what a phone shows) the takes come 1, 2, 3, …"""
    at = page_with_takes(speech, 6)
    boxes = [s for s in at.selectbox if (s.key or "").startswith("take_label0_")]
    assert [s.label for s in boxes] == [f"Take {i + 1} · take{i}.wav" for i in range(6)]


def test_predict_page_labels_takes_and_fits_the_voice_model(demo_root, models, speech):
    at = page_with_takes(speech, 3)
    # Uploaded takes start as "not said"; nothing is fitted yet.
    assert [at.selectbox(key=f"take_label0_{i}").value for i in range(3)] == ["(not said)"] * 3
    # each box names the file its take came from, so the right one gets the right label
    assert [at.selectbox(key=f"take_label0_{i}").label for i in range(3)] == [
        f"Take {i + 1} · take{i}.wav" for i in range(3)]
    assert any("Label at least three takes" in c.value for c in at.caption)
    for i, lab in enumerate(("angry", "sad", "happy")):
        at.selectbox(key=f"take_label0_{i}").set_value(lab)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("3 labelled takes (3 emotions)" in c.value for c in at.caption)
    y, _ = place([0.5, speech[4], 0.5])
    at.file_uploader[0].set_value(("one.wav", wav(y), "audio/wav")).run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(c.value for c in at.caption)
    assert "Fitted to your 3 labelled takes: voice.spk" in text, text
    assert "voice.spk names" in text and "of 3 of your takes right" in text, text
    # Switching adaptation off keeps the trained read-out.
    at.toggle(key="adapt_voice").set_value(False).run()
    assert not at.exception
    assert "Fitted to your" not in " ".join(c.value for c in at.caption)
    # Saved with its labels.
    at.text_input(key="voice_name").set_value("mine").run()
    at.button(key="voice_save").click().run()
    from ser.speakers import profile_path

    assert VoiceProfile.load(profile_path("mine")).labels == ["angry", "sad", "happy"]


def test_the_page_guide_and_the_guided_benchmark_ask_for_the_same_emotions():
    """The panel's guide ("say it as if you were fearful") and `benchmarks/enrolment.py
    --guided` share one order (`ser.speakers.GUIDE_ORDER`), so the guided figures in the
    README are what a visitor following the guide gives."""
    from ser.speakers import GUIDE_ORDER, guided_emotions
    from ui.voice import GUIDE, GUIDE_LABEL, next_take

    assert [GUIDE_LABEL[mood] for mood in GUIDE] == list(GUIDE_ORDER) == list(config.LABELS)
    for i, label in enumerate(guided_emotions(13)):
        mood = next(m for m, lab in GUIDE_LABEL.items() if lab == label)
        assert f"**{mood}**" in next_take(i)
