"""The Streamlit pages, headless through AppTest, on the synthetic demo corpus."""

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone
from streamlit.testing.v1 import AppTest

PAGES = ["pages/welcome.py", "pages/dataset.py", "pages/train.py", "pages/results.py",
         "pages/predict.py", "pages/architectures.py"]


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("SER_MODELS_DIR", str(d))
    return d


HOME = str(Path(__file__).resolve().parent.parent / "Home.py")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=180)
    at.run()
    if page != "pages/welcome.py":
        at.switch_page(page)
        at.run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(page, demo_root, models_dir):
    at = open_page(page)
    assert_clean(at)
    assert at.title, "page has no title"


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


def test_dataset_clip_browser_draws_figures(demo_root, models_dir):
    at = open_page("pages/dataset.py")
    before = len(at.get("plotly_chart"))
    clips = at.selectbox(key="clip").options
    at.selectbox(key="f_emotion").set_value("sad").run()
    at.selectbox(key="clip").set_value(at.selectbox(key="clip").options[1]).run()
    assert_clean(at)
    assert len(clips) > 10
    assert len(at.get("plotly_chart")) >= before
    assert any("sad" in m.value for m in at.markdown)
    at.button(key="scan").click().run()
    assert_clean(at)
    assert [m.label for m in at.metric][:1] == ["Digital silence"]


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
    at.button[0].click()  # the form's Launch button
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


def test_predict_shows_probabilities_for_every_model(trained_via_page, models_dir):
    import shutil

    from ser import runs

    _, run_id = trained_via_page
    # a "shipped" copy of the run's bundle, so two models are offered and selected
    (models_dir / "lenet1d.demo").mkdir()
    for name in ("model.pt", "card.json"):
        shutil.copy(runs.run_dir(run_id) / name, models_dir / "lenet1d.demo" / name)
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value(("clip.wav", wav_bytes(7.0), "audio/wav"))
    at.run()
    at.multiselect[0].set_value(at.multiselect[0].options)
    at.run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    n_models = len(at.multiselect[0].value)
    assert n_models == 2
    per_model = [c for c in at.get("plotly_chart") if str(c.key or "").startswith("p-")]
    assert len(per_model) == n_models
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


def test_results_with_a_shipped_model_lists_confusion_clips(trained_via_page, models_dir):
    """Regression: shipped predictions carry clip names, not paths; the page crashed."""
    from ser.zoo import ship_run

    _, run_id = trained_via_page
    ship_run(run_id, "lenet1d.demo-si", models_dir)
    at = open_page("pages/results.py")
    assert_clean(at)
    assert "lenet1d.demo-si" in list(at.dataframe[0].value["model"])
    assert any("test clips that are" in m.value for m in at.markdown)
