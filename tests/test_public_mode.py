"""Issue #14 item 5: public mode (no server path shown or accepted; corpora only from the
configured roots) and a safe folder box in normal mode."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from app_helpers import open_page
from streamlit.testing.v1 import AppTest

from ser import config
from ser.settings import SettingsError, load_settings

TEXT_ELEMENTS = ("markdown", "caption", "info", "warning", "error", "success", "code",
                 "text", "title", "subheader", "header", "exception")



@pytest.fixture()
def public(monkeypatch, demo_root):
    monkeypatch.setenv("SER_PUBLIC", "1")
    monkeypatch.setenv("SER_CORPORA", f"Demo voices={demo_root}")
    monkeypatch.setenv("SER_CONFIG", "/nonexistent/ser.toml")



def all_text(at: AppTest) -> str:
    out = []
    for kind in TEXT_ELEMENTS:
        for el in at.get(kind):
            out.append(str(getattr(el, "value", "")))
    for kind in ("selectbox", "text_input", "multiselect"):
        for el in at.get(kind):
            out.append(f"{el.label} {el.help or ''} {getattr(el, 'options', '')}")
    return "\n".join(out)


# ------------------------------------------------------------------ settings

def test_settings_from_file_and_environment(tmp_path, monkeypatch):
    f = tmp_path / "ser.toml"
    f.write_text('[ser]\npublic = true\n[ser.corpora]\n"CREMA-D" = "/srv/crema"\n')
    monkeypatch.setenv("SER_CONFIG", str(f))
    monkeypatch.delenv("SER_PUBLIC", raising=False)
    monkeypatch.delenv("SER_CORPORA", raising=False)
    s = load_settings()
    assert s.public and s.corpora == {"CREMA-D": "/srv/crema"}
    monkeypatch.setenv("SER_PUBLIC", "0")
    monkeypatch.setenv("SER_CORPORA", "A=/a;B=crema-d=/b,tess=/c")
    s = load_settings()
    assert not s.public and s.corpora == {"A": "/a", "B": "crema-d=/b,tess=/c"}
    monkeypatch.setenv("SER_PUBLIC", "maybe")
    with pytest.raises(SettingsError, match="SER_PUBLIC"):
        load_settings()


# ------------------------------------------------------------------ public mode

@pytest.mark.parametrize("page", ["pages/welcome.py", "pages/dataset.py", "pages/train.py",
                                  "pages/predict.py", "pages/results.py",
                                  "pages/architectures.py", "pages/studies.py"])
def test_public_pages_show_no_server_path_and_take_none(page, public, models_dir, demo_root):
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.sidebar.text_input, "public mode must not offer a folder box"
    text = all_text(at)
    for path in (demo_root, models_dir, config.runs_dir(), config.cache_dir(),
                 Path.home()):
        assert str(path) not in text, f"{path} shown on {page}"


def test_public_corpus_is_chosen_by_name_only(public, models_dir, demo_root):
    at = open_page("pages/dataset.py")
    box = at.sidebar.selectbox(key="corpus_choice")
    assert box.options == ["Default corpus", "Demo voices"]
    box.set_value("Demo voices").run()
    assert not at.exception
    assert at.session_state["corpus_dir"] == "Demo voices"
    assert str(demo_root) not in all_text(at)
    at.session_state["corpus_dir"] = "/etc"  # a forged session value is not a path
    at.run()
    assert not at.exception
    assert "/etc" not in all_text(at)


# ------------------------------------------------------------------ normal mode

@pytest.mark.parametrize("folder", ["/proc", "/", "/proc/self/fd", "~/../../.."])
def test_normal_mode_folder_box_never_crashes_or_rescans(folder, demo_root, models_dir,
                                                         monkeypatch):
    monkeypatch.delenv("SER_PUBLIC", raising=False)
    monkeypatch.setenv("SER_CONFIG", "/nonexistent/ser.toml")
    at = open_page("pages/welcome.py")
    at.sidebar.text_input[0].set_value(folder).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.error
    assert folder in at.session_state["corpus_rejected"]
    t = time.time()
    at.run()  # a rerun shows the verdict again without scanning
    assert not at.exception
    assert at.sidebar.error
    assert time.time() - t < 8


def test_public_server_does_not_take_training_runs(public, models_dir, monkeypatch):
    at = open_page("pages/train.py")
    assert not at.exception
    assert at.button(key="launch").disabled
    assert any("switched off" in i.value for i in at.info)
    monkeypatch.setenv("SER_TRAINING", "1")
    at = open_page("pages/train.py")
    assert not at.button(key="launch").disabled
