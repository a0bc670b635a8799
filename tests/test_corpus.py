import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import write_clip

from ser import config
from ser.corpora import CorpusError, crema_d, load_corpus, summary

EMOS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]


@pytest.fixture(scope="module")
def mini_crema(tmp_path_factory):
    """A CREMA-D-shaped folder: 4 actors × 2 sentences × 6 emotions, plus the quirks."""
    root = tmp_path_factory.mktemp("crema")
    audio = root / "AudioWAV"
    for i, spk in enumerate(["1001", "1002", "1003", "1004"]):
        for s, sent in enumerate(["DFA", "IEO"]):
            for e, emo in enumerate(EMOS):
                write_clip(audio / f"{spk}_{sent}_{emo}_XX.wav", 1.0 + 0.1 * e,
                           freq=150 + 20 * i + 7 * e + 3 * s)
    sf.write(audio / "1001_MTI_SAD_XX.wav", np.zeros(8000, np.float32), 16000)  # silence
    shutil.copy(audio / "1002_DFA_HAP_XX.wav", audio / "1002_TIE_HAP_XX.wav")
    shutil.copy(audio / "1002_DFA_HAP_XX.wav", audio / "1002_TIE_NEU_XX.wav")  # conflict
    loud = np.clip(np.sin(np.arange(16000) / 5.0) * 2, -1, 1).astype(np.float32)
    sf.write(audio / "1003_TSI_ANG_HI.wav", loud, 16000)  # clipped
    write_clip(audio / "notes.wav")  # does not parse
    write_clip(audio / "1001_XYZ_ANG_XX.wav")  # unknown sentence code
    (audio / "1004_ITS_FEA_XX.wav").write_bytes(b"garbage, not a wav")  # unreadable
    pd.DataFrame({"ActorID": [1001, 1002, 1003, 1004], "Age": [30, 40, 50, 60],
                  "Sex": ["Male", "Female", "Male", "Female"], "Race": ["x"] * 4,
                  "Ethnicity": ["y"] * 4}).to_csv(root / "VideoDemographics.csv", index=False)
    pd.DataFrame({"FileName": ["1001_DFA_ANG_XX", "1002_IEO_SAD_XX"], "VoiceVote": ["A", "N:S"],
                  "VoiceLevel": [60.0, 45.5]}).to_csv(root / "summaryTable.csv")
    return audio


def test_parse_name():
    assert crema_d.parse_name("1001_DFA_ANG_XX") == {
        "speaker": "1001", "sentence": "DFA", "emotion": "angry", "intensity": "unspecified"}
    assert crema_d.parse_name("1091_IEO_NEU_HI.wav")["intensity"] == "high"
    for bad in ["1001_DFA_ANG", "101_DFA_ANG_XX", "1001_DFA_XXX_XX", "1001_XYZ_ANG_XX",
                "notes", "1001_DFA_ANG_XX_extra"]:
        assert crema_d.parse_name(bad) is None


def test_manifest_columns_and_metadata(mini_crema):
    corpus = load_corpus(mini_crema)
    m = corpus.manifest
    assert not corpus.is_demo and corpus.name == "CREMA-D"
    for col in ["path", "dataset", "speaker", "sentence", "emotion", "intensity", "duration_s",
                "sex", "age", "human_vote"]:
        assert col in m.columns
    assert len(m) == 4 * 2 * 6 + 4
    assert set(m["emotion"]) == set(config.LABELS)
    row = m.set_index("clip").loc["1001_DFA_ANG_XX"]
    assert row["sex"] == "male" and row["human_vote"] == "angry"
    assert row["sentence_text"] == "Don't forget a jacket"
    assert m.set_index("clip").loc["1002_IEO_SAD_XX", "human_vote"] == "neutral:sad"
    assert m.set_index("clip").loc["1001_DFA_HAP_XX", "duration_s"] == pytest.approx(1.3)
    assert sorted(p.split("/")[-1] for p in corpus.unparsed) == ["1001_XYZ_ANG_XX.wav",
                                                                "notes.wav"]
    assert [p.split("/")[-1] for p in corpus.unreadable] == ["1004_ITS_FEA_XX.wav"]


def test_quirks(mini_crema):
    m = load_corpus(mini_crema).manifest
    q = crema_d.quirks(m, workers=1)
    assert q["silent"] == ["1001_MTI_SAD_XX"]
    assert q["duplicates_conflicting"] == [["1002_DFA_HAP_XX", "1002_TIE_HAP_XX",
                                            "1002_TIE_NEU_XX"]]
    assert "1003_TSI_ANG_HI" in q["clipped"]


def test_same_clip_in_two_formats_counts_once(tmp_path):
    write_clip(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    write_clip(tmp_path / "AudioMP3" / "1001_DFA_ANG_XX.mp3", format="MP3",
               subtype="MPEG_LAYER_III")
    assert len(load_corpus(tmp_path).manifest) == 1


def test_bad_folders(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "missing")
    with pytest.raises(CorpusError, match="no audio files"):
        load_corpus(tmp_path)
    write_clip(tmp_path / "hello.wav")
    with pytest.raises(CorpusError, match="none named like CREMA-D"):
        load_corpus(tmp_path)


def test_summary_counts(mini_crema):
    s = summary(load_corpus(mini_crema))
    assert s["speakers"] == 4 and s["per_emotion"]["sad"] == 9


def test_default_is_demo(demo_root):
    corpus = load_corpus()
    assert corpus.is_demo and "synthetic" in corpus.name.lower()
    assert corpus.root == demo_root
    assert set(corpus.manifest["emotion"]) == set(config.LABELS)
    assert (corpus.manifest["dataset"] == "demo").all()


def test_near_zero_decoded_silence_counts_as_silence(tmp_path):
    """Regression: Opus decodes CREMA-D's all-zero clip to ~1e-34, which is still silence."""
    y = np.zeros(8000, np.float32)
    y[100] = 1e-30
    sf.write(tmp_path / "1076_MTI_SAD_XX.wav", y, 16000, subtype="FLOAT")
    write_clip(tmp_path / "1076_MTI_ANG_XX.wav")
    q = crema_d.quirks(load_corpus(tmp_path).manifest, workers=1)
    assert q["silent"] == ["1076_MTI_SAD_XX"]


def test_parallel_scan_from_stdin_script_does_not_crash(tmp_path):
    """Regression: spawned workers cannot re-import a __main__ read from stdin."""
    import subprocess
    import sys

    for i in range(4):
        write_clip(tmp_path / f"100{i}_DFA_ANG_XX.wav")
    code = ("from ser.corpora import load_corpus, crema_d\n"
            f"m = load_corpus({str(tmp_path)!r}).manifest\n"
            "print(len(crema_d.quirks(m, workers=2)['peak']))\n")
    out = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4"


def test_demo_and_crema_keys_and_new_summary_fields(mini_crema, demo_root):
    crema, demo_corpus = load_corpus(mini_crema), load_corpus()
    assert (crema.key, crema.spec.key) == ("crema-d", "crema-d")
    assert (demo_corpus.key, demo_corpus.spec.key) == ("demo", "demo")
    assert (demo_corpus.manifest["corpus"] == "demo").all()
    s = summary(crema)
    assert s["corpora"] == ["crema-d"] and s["outside_six"] == 0
    assert s["per_corpus"]["crema-d"]["clips"] == s["clips"] and s["has_demographics"]
    assert set(crema.manifest["label_raw"]) == set(EMOS)


def test_a_corpus_does_not_borrow_metadata_of_a_folder_beside_it(tmp_path):
    """Regression: metadata was searched in the grandparent's children, so clips in
    datasets/mine/audio picked up datasets/crema-d/VideoDemographics.csv."""
    other = tmp_path / "datasets" / "crema-d"
    other.mkdir(parents=True)
    pd.DataFrame({"ActorID": [1001], "Age": [30], "Sex": ["Male"], "Race": ["x"],
                  "Ethnicity": ["y"]}).to_csv(other / "VideoDemographics.csv", index=False)
    write_clip(tmp_path / "datasets" / "mine" / "audio" / "1001_DFA_ANG_XX.wav", 0.5)
    m = load_corpus(tmp_path / "datasets" / "mine" / "audio").manifest
    assert "age" not in m and set(m["sex"]) == {""}


def test_quirks_scan_reuses_earlier_results_until_a_clip_changes(tmp_path):
    """Regression: `corpus info` decoded all 7,442 CREMA-D clips on every call (~2 min);
    the per-clip results are kept in the cache and only new or changed clips are read."""
    import os

    import soundfile as sf

    path = write_clip(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav", amp=0.5)
    write_clip(tmp_path / "AudioWAV" / "1001_IEO_SAD_XX.wav", amp=0.2)
    m = load_corpus(tmp_path).manifest
    first = crema_d.quirks(m, workers=1)["peak"]["1001_DFA_ANG_XX"]
    # Same size and modification time, other audio: the stored result is used.
    st = path.stat()
    y, sr = sf.read(path)
    sf.write(path, y * 0.1, sr, subtype="PCM_16")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size
    assert crema_d.quirks(m, workers=1)["peak"]["1001_DFA_ANG_XX"] == first
    # A changed clip is read again.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    again = crema_d.quirks(m, workers=1)["peak"]["1001_DFA_ANG_XX"]
    assert again == pytest.approx(first * 0.1, rel=0.01)


def test_quirks_scan_survives_new_file_times_when_the_bytes_are_the_same(tmp_path):
    """Regression: a corpus provisioned again (same files, new times) was decoded again in
    full (~2 min for CREMA-D); now the file's byte digest vouches for the stored result."""
    import json
    import os

    from ser import config

    path = write_clip(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav", amp=0.5)
    write_clip(tmp_path / "AudioWAV" / "1001_IEO_SAD_XX.wav", amp=0.2)
    m = load_corpus(tmp_path).manifest
    real = crema_d.quirks(m, workers=1)["peak"]["1001_DFA_ANG_XX"]
    # Mark the stored result, so a decode (which would give the real peak) is visible.
    store = config.cache_dir() / crema_d.STATS_CACHE
    cache = json.loads(store.read_text())
    cache[str(path)][1][1] = 0.123
    store.write_text(json.dumps(cache))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns + 7_000_000_000, st.st_mtime_ns + 7_000_000_000))
    assert crema_d.quirks(m, workers=1)["peak"]["1001_DFA_ANG_XX"] == 0.123
    assert json.loads(store.read_text())[str(path)][0] == list(crema_d_stamp(path))
    # other bytes under the new time: decoded again
    write_clip(path, amp=0.25)
    again = crema_d.quirks(m, workers=1)["peak"]["1001_DFA_ANG_XX"]
    assert again == pytest.approx(real * 0.5, rel=0.01)


def crema_d_stamp(path):
    from ser.fileio import file_stamp

    return file_stamp(path)
