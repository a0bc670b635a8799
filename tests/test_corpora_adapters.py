"""Corpus adapters: each corpus's naming and layout, written as tiny real audio files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import noise_clip as noise

from ser import config
from ser.corpora import (
    CorpusError,
    detect,
    get_spec,
    list_corpora,
    load_corpus,
    summary,
)


def by_clip(corpus) -> pd.DataFrame:
    return corpus.manifest.set_index("clip")


def check_common(corpus, key: str, language: str) -> None:
    """What every adapter's manifest promises."""
    m = corpus.manifest
    for col in ["path", "dataset", "speaker", "sentence", "emotion", "intensity", "duration_s",
                "clip", "corpus", "language", "label_raw", "sex"]:
        assert col in m.columns, col
    assert corpus.key == key and corpus.spec is not None and corpus.spec.key == key
    assert (m["corpus"] == key).all() and (m["dataset"] == key).all()
    assert (m["language"] == language).all()
    assert m["clip"].is_unique
    assert set(m["emotion"]) <= set(config.LABELS) | {""}
    assert (m["duration_s"] > 0.25).all()
    assert detect(corpus.root) == key


def test_registry_specs_are_complete():
    specs = {s.key: s for s in list_corpora()}
    assert set(specs) == {"crema-d", "ravdess", "tess", "savee", "emodb", "emovo", "urdu",
                          "custom", "demo"}
    for spec in specs.values():
        assert spec.name and spec.description and spec.example
        assert set(spec.label_map.values()) <= set(config.LABELS) | {None}
        assert set(dict(spec.speakers).values()) <= {"male", "female", ""}
    assert specs["tess"].outside_labels == ["ps"]
    assert specs["ravdess"].speaker_sex["01"] == "male"
    assert specs["ravdess"].speaker_sex["24"] == "female"
    assert specs["emodb"].language == "de" and specs["emovo"].language == "it"
    assert specs["custom"].sample_rate is None
    with pytest.raises(CorpusError, match="Unknown corpus kind"):
        get_spec("timit")


def test_ravdess(tmp_path):
    sr = 48000
    noise(tmp_path / "Actor_01" / "03-01-01-01-01-01-01.wav", sr)   # neutral, male
    noise(tmp_path / "Actor_02" / "03-01-02-02-02-01-02.wav", sr)   # calm, strong, female
    noise(tmp_path / "Actor_03" / "03-01-06-01-01-02-03.wav", sr)   # fearful
    noise(tmp_path / "Actor_04" / "03-01-08-02-02-02-04.wav", sr)   # surprised
    noise(tmp_path / "Actor_01" / "03-02-05-01-01-01-01.wav", sr)   # song: not speech
    noise(tmp_path / "Actor_01" / "03-01-05-01-01-01-31.wav", sr)   # no actor 31
    c = load_corpus(tmp_path)
    check_common(c, "ravdess", "en")
    assert c.name == "RAVDESS" and len(c.manifest) == 4
    m = by_clip(c)
    row = m.loc["03-01-01-01-01-01-01"]
    assert (row.emotion, row.label_raw, row.speaker, row.sex) == ("neutral", "neutral", "01",
                                                                   "male")
    row = m.loc["03-01-02-02-02-01-02"]
    assert (row.emotion, row.label_raw, row.sex, row.intensity) == ("", "calm", "female",
                                                                     "strong")
    assert row.sentence == "02" and row.sentence_text == "Dogs are sitting by the door"
    assert m.loc["03-01-06-01-01-02-03", "emotion"] == "fear"
    assert m.loc["03-01-08-02-02-02-04", ["emotion", "label_raw"]].tolist() == ["", "surprised"]
    assert sorted(Path(p).name for p in c.unparsed) == ["03-01-05-01-01-01-31.wav",
                                                        "03-02-05-01-01-01-01.wav"]


def test_tess(tmp_path):
    sr = 24414
    noise(tmp_path / "OAF_angry" / "OAF_back_angry.wav", sr)
    noise(tmp_path / "OAF_neutral" / "OA_bite_neutral.wav", sr)     # the release's quirk
    noise(tmp_path / "YAF_pleasant_surprised" / "YAF_back_ps.wav", sr)
    noise(tmp_path / "YAF_sad" / "YAF_dog_sad.wav", sr)
    noise(tmp_path / "YAF_fear" / "YAF_dog_Fear.wav", sr)              # case varies in copies
    noise(tmp_path / "readme.wav", sr)
    c = load_corpus(tmp_path)
    check_common(c, "tess", "en")
    m = by_clip(c)
    assert c.name == "TESS" and len(m) == 5
    assert m.loc["OAF_bite_neutral", ["speaker", "emotion"]].tolist() == ["OAF", "neutral"]
    assert m.loc["YAF_back_ps", ["emotion", "label_raw"]].tolist() == ["", "ps"]
    assert m.loc["YAF_dog_fear", "emotion"] == "fear"
    assert m.loc["OAF_back_angry", "sentence_text"] == "Say the word back"
    assert set(m["sex"]) == {"female"} and set(m["speaker"]) == {"OAF", "YAF"}
    assert [Path(p).name for p in c.unparsed] == ["readme.wav"]


def test_savee_both_layouts(tmp_path):
    flat, release = tmp_path / "flat", tmp_path / "release"
    noise(flat / "DC_sa11.wav", 44100)
    noise(flat / "JE_su01.wav", 44100)
    noise(flat / "KL_n30.wav", 44100)
    noise(flat / "XY_a01.wav", 44100)
    noise(release / "AudioData" / "DC" / "sa11.wav", 44100)
    noise(release / "AudioData" / "JK" / "h03.wav", 44100)
    noise(release / "AudioData" / "Other" / "a01.wav", 44100)
    a, b = load_corpus(flat), load_corpus(release)
    check_common(a, "savee", "en")
    check_common(b, "savee", "en")
    assert sorted(a.manifest["clip"]) == ["DC_sa11", "JE_su01", "KL_n30"]
    assert sorted(b.manifest["clip"]) == ["DC_sa11", "JK_h03"]
    m = by_clip(a)
    assert m.loc["DC_sa11", ["speaker", "emotion", "label_raw"]].tolist() == ["DC", "sad", "sa"]
    assert m.loc["JE_su01", ["emotion", "label_raw"]].tolist() == ["", "su"]
    assert set(m["sex"]) == {"male"}
    assert [Path(p).name for p in a.unparsed] == ["XY_a01.wav"]
    assert len(b.unparsed) == 1
    # The same clip in both layouts under one folder counts once.
    assert len(load_corpus(tmp_path).manifest) == 4


def test_emodb(tmp_path):
    for name in ["03a01Wa", "08a02Lb", "16b10Ec", "09a01Fa", "12a05Ta", "13b01Aa", "15a04Nc",
                 "99a01Wa"]:
        noise(tmp_path / "wav" / f"{name}.wav")
    c = load_corpus(tmp_path)
    check_common(c, "emodb", "de")
    m = by_clip(c)
    assert len(m) == 7 and c.name == "EmoDB"
    assert m.loc["03a01Wa", ["speaker", "sex", "emotion", "sentence"]].tolist() == [
        "03", "male", "angry", "a01"]
    assert m.loc["08a02Lb", ["emotion", "label_raw", "sex"]].tolist() == ["", "L", "female"]
    assert [m.loc[c_, "emotion"] for c_ in ["16b10Ec", "09a01Fa", "12a05Ta", "13b01Aa",
                                             "15a04Nc"]] == ["disgust", "happy", "sad", "fear",
                                                             "neutral"]
    assert [Path(p).name for p in c.unparsed] == ["99a01Wa.wav"]


def test_emovo(tmp_path):
    for spk, emo, sent in [("f1", "rab", "b1"), ("m2", "sor", "n3"), ("m3", "tri", "l4"),
                           ("f2", "gio", "d2"), ("f3", "pau", "b3")]:
        noise(tmp_path / spk / f"{emo}-{spk}-{sent}.wav", 48000)
    noise(tmp_path / "f1" / "xyz-f1-b1.wav", 48000)
    c = load_corpus(tmp_path)
    check_common(c, "emovo", "it")
    m = by_clip(c)
    assert len(m) == 5
    assert m.loc["rab-f1-b1", ["emotion", "speaker", "sex", "sentence"]].tolist() == [
        "angry", "f1", "female", "b1"]
    assert m.loc["sor-m2-n3", ["emotion", "label_raw", "sex"]].tolist() == ["", "sor", "male"]
    assert m.loc["tri-m3-l4", "emotion"] == "sad" and m.loc["gio-f2-d2", "emotion"] == "happy"
    assert m.loc["pau-f3-b3", "emotion"] == "fear"
    assert [Path(p).name for p in c.unparsed] == ["xyz-f1-b1.wav"]


def test_urdu(tmp_path):
    for folder, name in [("Angry", "SM2_F1_A023"), ("Happy", "SF10_F3_H05"),
                         ("Neutral", "SM1_F2_N01"), ("Sad", "SF1_F1_S1")]:
        noise(tmp_path / folder / f"{name}.wav", 44100)
    noise(tmp_path / "Sad" / "clip.wav", 44100)
    c = load_corpus(tmp_path)
    check_common(c, "urdu", "ur")
    m = by_clip(c)
    assert m.loc["SM2_F1_A023", ["speaker", "sex", "emotion"]].tolist() == ["SM2", "male",
                                                                             "angry"]
    assert m.loc["SF10_F3_H05", ["speaker", "sex", "emotion"]].tolist() == ["SF10", "female",
                                                                             "happy"]
    assert set(m["emotion"]) == {"angry", "happy", "neutral", "sad"}
    assert set(m["sentence"]) == {""} and set(m["intensity"]) == {"unspecified"}
    assert [Path(p).name for p in c.unparsed] == ["clip.wav"]
    s = summary(c)
    assert s["sentences"] == 0 and s["per_sentence"] == {} and s["outside_six"] == 0


def test_crema_d_gains_shared_columns(tmp_path):
    # Nested one level: the folder's parent is this test's own (the parent's other
    # children are searched for metadata; other tests' folders must not be).
    root = tmp_path / "crema"
    noise(root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    noise(root / "AudioWAV" / "1002_IEO_NEU_HI.wav")
    c = load_corpus(root)
    check_common(c, "crema-d", "en")
    assert c.name == "CREMA-D"
    m = by_clip(c)
    assert m.loc["1001_DFA_ANG_XX", ["label_raw", "emotion", "speaker"]].tolist() == [
        "ANG", "angry", "1001"]
    assert set(m["sex"]) == {""}  # no VideoDemographics.csv here
    assert summary(c)["has_demographics"] is False


def test_detection_prefers_crema_d_on_ties_and_kind_overrides(tmp_path):
    noise(tmp_path / "1001_DFA_ANG_XX.wav")
    noise(tmp_path / "OAF_back_angry.wav")
    assert detect(tmp_path) == "crema-d"
    c = load_corpus(tmp_path, kind="tess")
    assert c.key == "tess" and list(c.manifest["clip"]) == ["OAF_back_angry"]
    with pytest.raises(CorpusError, match="none named like EmoDB"):
        load_corpus(tmp_path, kind="emodb")
    with pytest.raises(CorpusError, match="Unknown corpus kind"):
        load_corpus(tmp_path, kind="timit")
    assert detect(tmp_path / "missing") is None


def test_custom_folder_per_emotion(tmp_path):
    root = tmp_path / "mine"
    noise(root / "angry" / "a.wav")
    noise(root / "Sad" / "a.wav")           # same file name under another label
    noise(root / "calm" / "c.wav")          # outside the six: kept, emotion ""
    noise(root / "happiness" / "h.wav")
    noise(root / "loose.wav")               # no label folder
    assert detect(root) == "custom"
    c = load_corpus(root)
    assert c.key == "custom" and c.name == "Own data: mine"
    m = by_clip(c)
    assert sorted(m.index) == ["Sad/a", "angry/a", "calm/c", "happiness/h"]
    assert m.loc["Sad/a", "emotion"] == "sad" and m.loc["happiness/h", "emotion"] == "happy"
    assert m.loc["calm/c", ["emotion", "label_raw"]].tolist() == ["", "calm"]
    assert set(m["speaker"]) == {"unknown"} and set(m["corpus"]) == {"custom"}
    assert [Path(p).name for p in c.unparsed] == ["loose.wav"]


def test_custom_folder_with_speakers(tmp_path):
    a, b = tmp_path / "label_first", tmp_path / "speaker_first"
    for spk in ["ann", "bob"]:
        for lab in ["angry", "neutral"]:
            noise(a / lab / spk / "x.wav")
            noise(b / spk / lab / "x.wav")
    for folder in (a, b):
        m = load_corpus(folder).manifest
        assert set(m["speaker"]) == {"ann", "bob"}
        assert set(m["emotion"]) == {"angry", "neutral"} and len(m) == 4


def test_folder_without_labels_is_not_custom(tmp_path):
    noise(tmp_path / "recordings" / "one.wav")
    noise(tmp_path / "angry" / "two.wav")  # only one emotion folder: not convincing
    assert detect(tmp_path) is None
    with pytest.raises(CorpusError, match="one sub-folder per emotion"):
        load_corpus(tmp_path)


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_custom_csv(tmp_path):
    root = tmp_path / "data"
    noise(root / "clips" / "a.wav")
    noise(root / "clips" / "b.wav")
    noise(root / "clips" / "c.wav")
    outside = noise(tmp_path / "elsewhere" / "d.wav")
    csv = write_csv(root / "labels.csv", [
        {"path": "clips/a.wav", "label": "Angry", "speaker": "s1", "sex": "F", "language": "fr"},
        {"path": "clips/b.wav", "label": "bored", "speaker": "s2", "sex": "m", "language": ""},
        {"path": "clips/c.wav", "label": "fearful", "speaker": "s2", "sex": "", "language": ""},
        {"path": str(outside), "label": "sad", "speaker": "s3", "sex": "x", "language": ""},
        {"path": "clips/missing.wav", "label": "sad", "speaker": "s3", "sex": "", "language": ""},
    ])
    for target in (csv, root):
        assert detect(target) == "custom"
        c = load_corpus(target)
        m = by_clip(c)
        assert c.key == "custom" and len(m) == 4
        assert m.loc["clips/a", ["emotion", "label_raw", "speaker", "sex", "language"]].tolist(
        ) == ["angry", "Angry", "s1", "female", "fr"]
        assert m.loc["clips/b", ["emotion", "label_raw", "sex"]].tolist() == ["", "bored",
                                                                               "male"]
        assert m.loc["clips/c", "emotion"] == "fear"
        assert m.loc[outside.with_suffix("").as_posix(), "sex"] == ""
        assert [Path(p).name for p in c.unreadable] == ["missing.wav"]


@pytest.mark.parametrize("rows, match", [
    ([{"path": "a.wav", "label": "sad"}], "lacks the column.*speaker"),
    ([{"path": "a.wav", "label": "", "speaker": "s"}], "'label' is empty on line"),
    ([{"path": "a.wav", "label": "sad", "speaker": "s"},
      {"path": "./a.wav", "label": "sad", "speaker": "s"}], "more than once"),
    ([{"path": "nope.wav", "label": "sad", "speaker": "s"}], "could be read"),
    ([], "lists no clips"),
])
def test_bad_csv_is_a_clear_error(tmp_path, rows, match):
    noise(tmp_path / "a.wav")
    path = tmp_path / "list.csv"
    if rows:
        write_csv(path, rows)
    else:
        path.write_text("path,label,speaker\n")
    with pytest.raises(CorpusError, match=match):
        load_corpus(path)


def test_non_csv_file_is_rejected(tmp_path):
    f = noise(tmp_path / "x.wav")
    with pytest.raises(CorpusError, match="is a file"):
        load_corpus(f)
