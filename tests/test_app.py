"""The Streamlit pages, headless through AppTest, on the synthetic demo corpus."""

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from app_helpers import open_page
from conftest import tone
from streamlit.testing.v1 import AppTest

from ser import config

PAGES = ["pages/welcome.py", "pages/dataset.py", "pages/train.py", "pages/results.py",
         "pages/predict.py", "pages/architectures.py"]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(page, demo_root, models_dir):
    at = open_page(page)
    assert_clean(at)
    assert at.title, "page has no title"


def test_train_page_warns_when_a_floor_meets_speaker_normalisation(demo_root, models_dir):
    at = open_page("pages/train.py")
    at.checkbox(key="speaker_norm").set_value(True).run()
    assert_clean(at)
    assert not at.warning, [w.value for w in at.warning]  # the seed's 80-dB floor
    at.selectbox(key="top_db").set_value(30).run()
    assert_clean(at)
    assert any("do not add up" in w.value for w in at.warning), [w.value for w in at.warning]


def test_train_page_refuses_a_random_floor_for_a_1d_model(demo_root, models_dir):
    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["lenet1d"])
    at.checkbox(key="random_floor").set_value(True).run()
    assert_clean(at)
    assert any("random floor" in e.value and "Change the options" in e.value
               for e in at.error), [e.value for e in at.error]
    assert at.button(key="launch").disabled  # refused before launch, not after


def test_train_page_launches_with_the_raters_votes_only_where_there_are_votes(
        demo_root, models_dir, tmp_path):
    from conftest import crema_with_votes

    from ser import runs

    at = open_page("pages/train.py")
    assert at.number_input(key="vote_weight").disabled  # the demo corpus has no votes
    at.session_state["corpus_dir"] = str(crema_with_votes(tmp_path / "crema"))
    at.run()
    assert_clean(at)
    assert not at.number_input(key="vote_weight").disabled
    at.number_input(key="vote_weight").set_value(0.25)
    at.multiselect(key="archs").set_value(["lenet1d"])
    at.number_input(key="epochs").set_value(1)
    at.checkbox(key="noise").set_value(False)
    at.checkbox(key="pitch").set_value(True).run()
    at.number_input(key="pitch_range").set_value(4.0)
    at.radio(key="split").set_value("random").run()
    at.button(key="launch").click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    run = next(r for r in runs.list_runs() if r["config"].get("vote_weight") == 0.25)
    runs.cancel(run["run_id"])
    assert run["config"]["pitch"] and run["config"]["pitch_range"] == 4.0


def test_train_page_pitch_range_follows_the_pitch_shift(demo_root, models_dir):
    at = open_page("pages/train.py")
    assert at.number_input(key="pitch_range").disabled
    at.checkbox(key="pitch").set_value(True).run()
    assert not at.number_input(key="pitch_range").disabled


def test_train_page_offers_the_one_step_read_out_for_voicelin_only(demo_root, models_dir):
    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["lenet2d"])
    at.number_input(key="readout_l2").set_value(300.0).run()
    assert_clean(at)
    assert any("lenet2d is not one linear layer" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert at.button(key="launch").disabled
    at.multiselect(key="archs").set_value(["voicelin"]).run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert not at.button(key="launch").disabled


def test_train_page_refuses_more_averaged_epochs_than_the_run_has(demo_root, models_dir):
    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["lenet2d"])
    at.number_input(key="epochs").set_value(2)
    at.number_input(key="swa").set_value(3).run()
    assert_clean(at)
    assert any("swa" in e.value and "Change the options" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert at.button(key="launch").disabled
    at.number_input(key="swa").set_value(2).run()
    assert not at.error and not at.button(key="launch").disabled


def test_home_says_demo_corpus(demo_root, models_dir):
    at = open_page("pages/welcome.py")
    text = " ".join(i.value for i in at.info)
    assert "synthetic" in text.lower()
    assert any("No model bundles" in w.value for w in at.warning)


def test_sidebar_rejects_a_folder_without_clips(tmp_path, demo_root, models_dir):
    at = open_page("pages/welcome.py")
    at.sidebar.text_input[0].set_value(str(tmp_path)).run()
    assert_clean(at)
    assert any("No usable clips" in e.value for e in at.sidebar.error)


@pytest.mark.slow
def test_dataset_clip_browser_draws_figures(demo_root, models_dir):
    at = open_page("pages/dataset.py")
    assert not [s for s in at.selectbox if s.key == "clip"], "only the Overview is built"
    at.button(key="scan").click().run()
    assert_clean(at)
    assert [m.label for m in at.metric][:1] == ["Digital silence"]
    at.radio(key="view").set_value("Clip browser").run()
    before = len(at.get("plotly_chart"))
    clips = at.selectbox(key="clip").options
    at.selectbox(key="f_emotion").set_value("sad").run()
    at.selectbox(key="clip").set_value(at.selectbox(key="clip").options[1]).run()
    assert_clean(at)
    assert len(clips) > 10
    assert len(at.get("plotly_chart")) >= before
    assert any("sad" in m.value for m in at.markdown)
    titles = lambda: " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))  # noqa: E731
    assert "noise floor removed" not in titles()
    at.toggle(key="clip_denoise").set_value(True).run()
    assert_clean(at)
    assert "noise floor removed" in titles()


@pytest.fixture(scope="module")
def trained_via_page(demo_root):
    """Launch a 1-epoch run from the Train page and wait for the live view to say finished."""
    from ser import runs

    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["lenet1d"])
    at.number_input(key="epochs").set_value(1)
    at.checkbox(key="noise").set_value(False)
    at.checkbox(key="shift").set_value(True)
    at.number_input(key="copies").set_value(2)
    at.button(key="launch").click()
    at.run()
    assert_clean(at)
    ids = [r["run_id"] for r in runs.list_runs()]
    assert ids, "no run was created"
    run_id = ids[0]
    t0 = time.time()
    while runs.status(run_id)["state"] in runs.ACTIVE:
        assert time.time() - t0 < 240, runs.log_tail(run_id, 30)
        time.sleep(0.5)
    at.run()
    return at, run_id


def test_train_page_shows_finished_run_with_curve(trained_via_page):
    from ser import runs

    at, run_id = trained_via_page
    assert runs.status(run_id)["state"] == "finished", runs.log_tail(run_id, 30)
    cfg = json.loads((runs.run_dir(run_id) / "config.json").read_text())
    assert (cfg["freq_shift"], cfg["time_shift"], cfg["noise"], cfg["copies"]) == (
        4, 0.25, False, 2)
    assert_clean(at)
    text = " ".join(m.value for m in at.markdown)
    assert run_id in text and "finished" in text
    assert any(c.key and str(c.key).startswith(f"curve-{run_id}") for c in
               at.get("plotly_chart")) or len(at.get("plotly_chart")) >= 1


def test_results_lists_the_run(trained_via_page, models_dir):
    _, run_id = trained_via_page
    at = open_page("pages/results.py")
    assert_clean(at)
    df = at.dataframe[0].value
    assert any(run_id in str(n) for n in df["model"])
    assert "speaker-independent" in " ".join(map(str, df["split"]))


def wav_bytes(seconds=2.0, sr=16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, sr, freq=190), sr, format="WAV")
    return buf.getvalue()


def test_predict_shows_probabilities_for_every_model(trained_via_page, models_dir,
                                                     speech_wav):
    import shutil

    from ser import runs

    _, run_id = trained_via_page
    # a "shipped" copy of the run's bundle, so two models are offered and selected
    (models_dir / "lenet1d.demo").mkdir()
    for name in ("model.pt", "card.json"):
        shutil.copy(runs.run_dir(run_id) / name, models_dir / "lenet1d.demo" / name)
    at = open_page("pages/predict.py")
    # real (synthetic) speech: a tone is not speech to the voice activity detector
    at.file_uploader[0].set_value(("clip.wav", speech_wav, "audio/wav"))
    at.run()
    # the run and its shipped copy (runs that other test files left behind, named
    # "<card name> [<run id>]", stay out)
    ours = [o for o in at.multiselect[0].options if run_id in o or "[" not in o]
    at.multiselect[0].set_value(ours)
    at.run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    n_models = len(at.multiselect[0].value)
    assert n_models == 2
    # One compact chart for every model (a row each), not one chart per model.
    assert not [c for c in at.get("plotly_chart") if str(c.key or "").startswith("p-")]
    every = chart(at, "every_model")["data"][0]
    assert every["type"] == "heatmap" and len(every["y"]) == n_models
    subheads = [s.value for s in at.subheader]
    assert subheads.index("Verdict") < subheads.index("Every model") < subheads.index("Input")
    assert any(m.label == "Confidence" for m in at.metric)
    assert any("Emotion over time" in s.value for s in at.subheader)


@pytest.mark.parametrize("name,data,needle", [
    ("garbage.wav", b"this is not audio at all" * 40, "not audio"),
    ("empty.wav", b"", "empty"),
    ("cut.wav", wav_bytes(2.0)[:3000], "truncated"),
])
def test_predict_bad_input_is_a_message_not_a_traceback(name, data, needle, demo_root,
                                                        models_dir):
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value((name, data, "audio/wav"))
    at.run()
    assert_clean(at)
    assert any(needle in e.value for e in at.error), [e.value for e in at.error]


def test_predict_silent_clip_warns(demo_root, models_dir):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000, np.float32), 16000, format="WAV")
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value(("silence.wav", buf.getvalue(), "audio/wav"))
    at.run()
    assert_clean(at)
    assert any("silence" in w.value for w in at.warning)


def test_predict_rejects_a_wrong_model_file(demo_root, models_dir):
    at = open_page("pages/predict.py")
    at.file_uploader(key="own_bundle").set_value(("model.pt", b"not a model", "application/x"))
    at.run()
    assert_clean(at)
    assert any("cannot be used" in e.value for e in at.error)


@pytest.mark.slow
def test_results_with_a_shipped_model_lists_confusion_clips(trained_via_page, models_dir):
    """Regression: shipped predictions carry clip names, not paths; the page crashed."""
    from ser.zoo import ship_run

    _, run_id = trained_via_page
    ship_run(run_id, "lenet1d.demo-si", models_dir)
    at = open_page("pages/results.py")
    assert_clean(at)
    assert "lenet1d.demo-si" in list(at.dataframe[0].value["model"])
    assert any("test clips that are" in m.value for m in at.markdown)


# ------------------------------------------------------------------ pools and cross-corpus

@pytest.fixture(scope="module")
def tess_dir(tmp_path_factory) -> Path:
    """A tiny TESS-named corpus of generated tones: 2 speakers × 2 words × 7 labels
    (``ps`` = pleasant surprise, outside the six)."""
    from conftest import write_clip

    root = tmp_path_factory.mktemp("tess")
    for s_i, spk in enumerate(("OAF", "YAF")):
        for w_i, word in enumerate(("back", "dog")):
            for e_i, emo in enumerate(("angry", "disgust", "fear", "happy", "neutral", "sad",
                                       "ps")):
                write_clip(root / f"{spk}_{emo}" / f"{spk}_{word}_{emo}.wav", 0.8, 24414,
                           freq=160 + 25 * e_i + 40 * s_i + 5 * w_i)
    return root


def chart(at: AppTest, key: str) -> dict:
    """The Plotly figure (as JSON) of the chart with this key, arrays as plain lists."""
    found = [c for c in at.get("plotly_chart") if c.key == key]
    assert found, f"no chart {key!r}; keys: {[c.key for c in at.get('plotly_chart')]}"
    return _decoded(json.loads(found[0].proto.spec))


def _decoded(obj):
    """Plotly ships numeric arrays base64-encoded ({"bdata", "dtype", "shape"})."""
    import base64

    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=obj["dtype"])
            if obj.get("shape"):
                arr = arr.reshape([int(n) for n in str(obj["shape"]).split(",")])
            return arr.tolist()
        return {k: _decoded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decoded(v) for v in obj]
    return obj


DEMO_NAME = "SER Studio synthetic demo corpus"
COMPARE_CHARTS = ["cc_emotions", "cc_speakers", "cc_durations", "cc_rms", "cc_bandwidth",
                  "cc_noise", "cc_active", "cc_range_emotion", "cc_ltas", "cc_ltas_emotion"]


@pytest.mark.slow
def test_dataset_compare_corpora_on_the_demo_corpus(demo_root, models_dir):
    at = open_page("pages/dataset.py")
    assert "Compare corpora" in at.radio(key="view").options
    at.radio(key="view").set_value("Compare corpora").run()
    assert [c.key for c in at.get("plotly_chart") if c.key == "cc_emotions"]
    at.select_slider(key="cc_per_group").set_value(20)
    at.button(key="measure").click().run()
    assert_clean(at)
    for key in COMPARE_CHARTS:
        fig = chart(at, key)
        assert fig["data"], key
    ltas = chart(at, "cc_ltas")["data"]
    assert len(ltas) == 1 and len(ltas[0]["y"]) == 64 and "(120)" in ltas[0]["name"]
    assert len(chart(at, "cc_ltas_emotion")["data"]) == 6
    assert not at.get("plotly_chart") or "cc_outside" not in [c.key for c in
                                                              at.get("plotly_chart")]
    assert any("Measured 120 clips" in c.value for c in at.caption)


@pytest.mark.slow
def test_dataset_pool_of_two_corpora(demo_root, tess_dir, models_dir):
    at = open_page("pages/dataset.py")
    label = at.sidebar.text_input[0].label
    assert "several separated by commas" in label
    assert "crema-d=/path,tess=/path" in at.sidebar.text_input[0].help
    at.sidebar.text_input[0].set_value(f"{demo_root},tess={tess_dir}").run()
    assert_clean(at)
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    assert any("Pool" in c.value and "TESS" in c.value for c in at.sidebar.caption)
    assert any("A **pool** is several corpora" in c.value for c in at.caption)
    per_corpus = chart(at, "pool_corpora")["data"]  # the Overview: what each corpus brings
    # In the pool's order, by the corpora's names (not their keys sorted)
    assert list(per_corpus[0]["x"]) == [DEMO_NAME, "TESS"]
    at.radio(key="view").set_value("Compare corpora").run()
    bars = chart(at, "cc_emotions")["data"]
    assert [b["name"] for b in bars] == [DEMO_NAME, "TESS"]
    assert bars[1]["y"] == [4] * 6
    outside = chart(at, "cc_outside")["data"]
    assert outside[0]["x"] == ["TESS: ps"] and outside[0]["y"] == [4]
    speakers = chart(at, "cc_speakers")["data"]
    assert {b["name"] for b in speakers} == {"female", "male"}
    at.select_slider(key="cc_per_group").set_value(20)
    at.button(key="measure").click().run()
    assert_clean(at)
    ltas = chart(at, "cc_ltas")["data"]
    assert [t["name"] for t in ltas][1] == "TESS (28)" and len(ltas) == 2
    at.selectbox(key="cc_ltas_corpus").set_value("tess").run()
    assert_clean(at)
    names = [t["name"] for t in chart(at, "cc_ltas_emotion")["data"]]
    assert names == [f"{e} (4)" for e in config.LABELS] + ["ps (4)"]
    bandwidth = chart(at, "cc_bandwidth")["data"]
    assert len(bandwidth) == 2 and all(len(b["y"]) for b in bandwidth)
    ranges = chart(at, "cc_range_emotion")["data"]
    assert [b["name"] for b in ranges] == [DEMO_NAME, "TESS"]
    assert list(ranges[1]["x"]) == [*config.LABELS, "ps"]


@pytest.mark.slow
def test_train_page_offers_leave_one_corpus_out_only_for_a_pool(demo_root, tess_dir,
                                                                models_dir):
    from ser import runs

    at = open_page("pages/train.py")
    assert at.radio(key="split").options == ["Speaker-independent (honest)",
                                             "Random 70/30 (seed notebook; leaks speakers)"]
    assert at.checkbox(key="balance").disabled
    assert at.number_input(key="adversary").disabled
    at.session_state["corpus_dir"] = f"{demo_root},tess={tess_dir}"
    at.run()
    assert_clean(at)
    assert len(at.radio(key="split").options) == 3
    assert not at.number_input(key="adversary").disabled
    before = " ".join(c.value for c in at.caption)
    assert "speaker-independent inside each corpus" in before
    at.radio(key="split").set_value("loco").run()
    assert_clean(at)
    assert at.selectbox(key="test_corpus").options == [DEMO_NAME, "TESS"]
    at.selectbox(key="test_corpus").set_value("tess").run()
    # Leaving TESS out leaves one corpus to train on: nothing for a corpus adversary to do.
    at.number_input(key="adversary").set_value(0.5).run()
    assert_clean(at)
    assert "one left out" in " ".join(e.value for e in at.error)
    at.number_input(key="adversary").set_value(0.0).run()
    text = " ".join(c.value for c in at.caption)
    assert "leave-one-corpus-out: test on all of TESS (24 clips)" in text
    assert "24 test clips" in text
    at.checkbox(key="balance").set_value(True)
    at.selectbox(key="fs2_norm").set_value("utterance")
    at.selectbox(key="top_db").set_value(30)
    at.multiselect(key="archs").set_value(["lenet1d"])
    at.number_input(key="epochs").set_value(1)
    at.checkbox(key="noise").set_value(False)
    at.selectbox(key="precision").set_value("bf16").run()
    from ser.training import cpu_has_bf16

    # Emulated bfloat16 is named beside the choice, before anything is launched.
    assert any("is emulated" in w.value for w in at.warning) == (not cpu_has_bf16())
    at.button(key="launch").click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    run_id = next(r["run_id"] for r in runs.list_runs() if r["config"].get("split") == "loco")
    cfg = json.loads((runs.run_dir(run_id) / "config.json").read_text())
    assert (cfg["split"], cfg["test_corpus"], cfg["balance"]) == ("loco", "tess", "corpus")
    assert cfg["precision"] == "bf16"
    assert cfg["features"] == {"fs2_norm": "utterance", "top_db": 30.0}
    assert cfg["data"] == f"{demo_root},tess={tess_dir}"
    t0 = time.time()
    while runs.status(run_id)["state"] in runs.ACTIVE:
        assert time.time() - t0 < 240, runs.log_tail(run_id, 30)
        time.sleep(0.5)
    assert runs.status(run_id)["state"] == "finished", runs.log_tail(run_id, 30)
    report = json.loads((runs.run_dir(run_id) / "report.json").read_text())
    assert report["n"] == 24


def test_results_cross_corpus_matrix(trained_via_page, models_dir):
    from ser import crosscorpus
    from ser.zoo import ship_run

    _, run_id = trained_via_page
    ship_run(run_id, "lenet1d.demo-xc", models_dir)
    at = open_page("pages/results.py")
    assert "xc_matrix" not in [c.key for c in at.get("plotly_chart")]  # one view at a time
    at.radio(key="results_view").set_value("Cross-corpus").run()
    assert_clean(at)
    assert any("python -m ser crosscorpus MODEL --corpus tess=" in i.value for i in at.info)
    assert "xc_matrix" not in [c.key for c in at.get("plotly_chart")]

    def cell(corpus, kind, uar, share):
        return crosscorpus.Cell(corpus, kind, 40, uar, uar, {e: uar for e in config.LABELS},
                                dict(zip(config.LABELS, share)))

    crosscorpus.write(models_dir / "lenet1d.demo-xc", [
        cell("demo", "held-out speakers", 0.62, [0.18, 0.16, 0.17, 0.16, 0.16, 0.17]),
        cell("tess", "unseen", 0.21, [0.60, 0.08, 0.08, 0.08, 0.08, 0.08]),
    ])
    at = open_page("pages/results.py")
    at.radio(key="results_view").set_value("Cross-corpus").run()
    assert_clean(at)
    heat = chart(at, "xc_matrix")["data"][0]
    assert heat["type"] == "heatmap" and heat["x"] == [DEMO_NAME, "TESS"]
    assert heat["z"] == [[0.62, 0.21]]
    assert "held-out speakers" in heat["text"][0][0] and "unseen" in heat["text"][0][1]
    assert "⚠" in heat["text"][0][1] and "⚠" not in heat["text"][0][0]
    assert "lenet1d.demo-xc" in heat["y"][0] and "speaker-independent" in heat["y"][0]
    share = chart(at, "xc_share")
    lines = sorted(s["x0"] for s in share["layout"]["shapes"])
    assert lines == pytest.approx([1 / 6, 0.35])
    assert any("60% angry" in a["text"] for a in share["layout"]["annotations"])
    recall = chart(at, "xc_recall")["data"][0]
    assert recall["z"][1] == [0.21] * 6
    assert any("Unseen" in c.value and "Held-out speakers" in c.value for c in at.caption)


# ------------------------------------------------------------------ Predict: speech segments,
# emotion timeline, calibrated confidence

@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> bytes:
    """Two synthetic utterances separated by 1.5 s of room noise (8-9 s in all)."""
    from predict_helpers import place, utterances, wav

    u = utterances(tmp_path_factory.mktemp("speech") / "corpus", n=2)
    y, _ = place([1.0, u[0], 1.5, u[1], 1.0])
    return wav(y)


def _calibration(T: float, threshold: float) -> dict:
    return {"temperature": T, "threshold": threshold, "ece_before": 0.1, "ece_after": 0.04,
            "n_val": 500, "method": "temperature"}


@pytest.fixture()
def tiny_models(models_dir):
    """Two untrained bundles: one calibrated (T = 1.5), one not."""
    from predict_helpers import make_bundle

    make_bundle(models_dir / "tiny.cal" / "model.pt", name="tiny.cal", seed=1,
                calibration=_calibration(1.5, 0.2))
    make_bundle(models_dir / "tiny.raw" / "model.pt", name="tiny.raw", seed=2)
    return models_dir


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "audio/wav"))
    at.run()
    assert_clean(at)
    return at


def test_predict_no_speech_is_a_message_not_a_verdict(demo_root, tiny_models):
    at = upload(open_page("pages/predict.py"), "hum.wav", wav_bytes(4.0))
    assert any("No speech found" in w.value for w in at.warning), [w.value for w in
                                                                  at.warning]
    assert not any(s.value == "Verdict" for s in at.subheader)
    assert not at.get("download_button")


def test_predict_timeline_with_players_and_csv(demo_root, tiny_models, speech_wav):
    at = upload(open_page("pages/predict.py"), "two.wav", speech_wav)
    assert not at.error, [e.value for e in at.error]
    assert sorted(at.multiselect[0].value) == ["tiny.cal", "tiny.raw"]
    assert any(s.value == "Emotion over time" for s in at.subheader)
    timeline = at.dataframe[0].value
    assert list(timeline["segment"]) == [1, 2]
    assert {"start_s", "end_s", "emotion", "confidence"} <= set(timeline.columns)
    [download] = at.get("download_button")
    assert download.key == "timeline_csv" and "CSV" in download.label
    assert len(at.get("audio")) == 1 + 2  # the whole clip, then one player per segment
    assert any(c.value.startswith("#2 ") for c in at.caption)
    assert "timeline" in [c.key for c in at.get("plotly_chart")]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Speech scored"].endswith(" s")
    assert float(metrics["Speech scored"][:-2]) < 7.0  # the pauses are not scored
    text = " ".join(c.value for c in at.caption)
    assert "Uncalibrated (raw softmax, T = 1): tiny.raw" in text
    notes = " ".join(map(str, np.ravel(chart(at, "every_model")["data"][0]["customdata"])))
    assert "T = 1.50" in notes  # the calibrated model's card, in the chart's hover
    # Without the voice activity detector the whole clip is scored, pauses included.
    at.toggle(key="vad").set_value(False).run()
    assert_clean(at)
    assert any(m.label == "Audio scored" for m in at.metric)


def test_predict_uncertain_shows_the_two_leading_emotions(demo_root, models_dir, speech_wav):
    from predict_helpers import make_bundle

    make_bundle(models_dir / "tiny.unsure" / "model.pt", name="tiny.unsure", seed=1,
                calibration=_calibration(1.0, 0.999))
    at = upload(open_page("pages/predict.py"), "two.wav", speech_wav)
    verdict = [m.value for m in at.markdown if m.value.startswith("## ")]
    assert verdict and verdict[0].startswith("## UNCERTAIN") and " or " in verdict[0]
    assert any("below the threshold" in i.value for i in at.info)
    assert any("threshold 99.9%" in c.value for c in at.caption)



def test_predict_defaults_to_one_model_and_offers_the_shipped_ensemble(demo_root, tiny_models,
                                                                    speech_wav):
    """The default set is one model (``default.json``): scoring stays fast enough for batch
    runs and live demos; the shipped ensemble is one switch away and then scores the clip."""
    from ser.ensemble import Ensemble, write_ensemble

    (tiny_models / "default.json").write_text(json.dumps(
        {"models": ["tiny.raw"], "why": "the one fast model"}))
    write_ensemble(Ensemble("ensemble.tiny", ["tiny.cal", "tiny.raw"], "both tiny models"),
                   tiny_models)
    try:
        at = upload(open_page("pages/predict.py"), "two.wav", speech_wav)
        assert at.multiselect[0].value == ["tiny.raw"]
        assert at.multiselect[0].help == "By default the one fast model."
        # One model always "agrees" with itself: its second choice is shown instead.
        labels = [m.label for m in at.metric]
        assert any(lab.startswith("Runner-up · ") for lab in labels)
        assert "Models agreeing" not in labels
        # the emotion alone is the metric's value, so a narrow column never cuts it off
        runner = next(m for m in at.metric if m.label.startswith("Runner-up"))
        assert runner.value in config.LABELS
        at.toggle(key="use_ensemble").set_value(True).run()
        assert_clean(at)
        assert sorted(at.multiselect[0].value) == ["tiny.cal", "tiny.raw"]
        assert any("Ensemble of 2 models" in m.value for m in at.markdown)
        assert "Models agreeing" in [m.label for m in at.metric]
    finally:
        (tiny_models / "default.json").unlink()
        (tiny_models / "ensemble.json").unlink()


def test_train_page_names_what_one_speaker_batches_cannot_train_with(demo_root, models_dir):
    at = open_page("pages/train.py")
    at.multiselect(key="archs").set_value(["ser2d"])
    at.checkbox(key="speaker_batches").set_value(True).run()
    assert_clean(at)
    assert not at.error and not at.button(key="launch").disabled
    at.number_input(key="nproc").set_value(2).run()
    assert any("One-speaker batches" in e.value for e in at.error), [e.value for e in at.error]
    assert at.button(key="launch").disabled
