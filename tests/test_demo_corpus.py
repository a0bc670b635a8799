"""The synthetic demo corpus: layout, determinism, caching, audio sanity, learnability."""

from __future__ import annotations

import hashlib
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from ser import config
from ser.corpora import demo

NAME_RE = re.compile(r"^(\d{4})_([A-Z]{3})_(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX)$")
EMOS = {"ANG", "DIS", "FEA", "HAP", "NEU", "SAD"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, float, list[tuple[int, int]]]:
    """The default corpus, generated once for the module: (folder, seconds, progress calls)."""
    dest = tmp_path_factory.mktemp("demo") / "corpus"
    calls: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    out = demo.generate(dest, progress=lambda done, total: calls.append((done, total)))
    return out, time.perf_counter() - t0, calls


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def _expected_count(n_speakers: int, sentences: tuple[str, ...]) -> int:
    # IEO: five emotions at LO/MD/HI plus NEU at XX; every other sentence: six at XX.
    per_speaker = sum(16 if s == "IEO" else 6 for s in sentences)
    return n_speakers * per_speaker


def test_layout_and_names(corpus):
    root, seconds, calls = corpus
    wavs = sorted(root.glob("*.wav"))
    assert len(wavs) == _expected_count(12, demo.DEFAULT_SENTENCES) == 552
    assert seconds < 60  # generous for loaded CI machines; ~5 s on an idle 2-core box
    assert calls[0] == (0, 552) and calls[-1] == (552, 552) and len(calls) == 553

    per_speaker: dict[str, set[str]] = defaultdict(set)
    for p in wavs:
        m = NAME_RE.match(p.stem)
        assert m, p.name
        spk, sent, emo, level = m.groups()
        assert 9001 <= int(spk) <= 9012
        assert sent in demo.DEFAULT_SENTENCES
        # Like CREMA-D: only IEO carries intensity levels, and neutral never does.
        if sent == "IEO" and emo != "NEU":
            assert level in {"LO", "MD", "HI"}
        else:
            assert level == "XX"
        per_speaker[spk].add(emo)
    assert len(per_speaker) == 12
    assert all(emos == EMOS for emos in per_speaker.values())

    assert (root / "README.txt").read_text().lower().count("synthetic") >= 1
    assert "SER Studio" in (root / "README.txt").read_text()
    assert demo.is_demo_path(root)
    assert not list(root.parent.glob(".*tmp-*"))  # the temp folder was renamed away


def test_demographics(corpus):
    root, _, _ = corpus
    raw = (root / "VideoDemographics.csv").read_text().splitlines()
    assert raw[0] == '"ActorID","Age","Sex","Race","Ethnicity"'
    df = pd.read_csv(root / "VideoDemographics.csv")
    assert list(df.columns) == ["ActorID", "Age", "Sex", "Race", "Ethnicity"]
    assert df["ActorID"].tolist() == list(range(9001, 9013))
    assert set(df["Sex"]) == {"Male", "Female"}
    assert (df["Race"] == "Synthetic").all() and (df["Ethnicity"] == "Synthetic").all()
    assert df["Age"].between(18, 80).all()


def test_audio_sanity(corpus):
    root, _, _ = corpus
    durations = []
    for p in sorted(root.glob("*.wav")):
        info = sf.info(p)
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        y, _ = sf.read(p, dtype="float64")
        assert np.isfinite(y).all()
        assert np.max(np.abs(y)) <= 0.9
        assert np.sqrt(np.mean(y ** 2)) > 1e-3  # not silent
        durations.append(y.size / 16000)
    assert 1.3 <= min(durations) and max(durations) <= 4.5


def test_sex_matches_pitch(corpus):
    """Female speakers' neutral clips sit clearly higher in F0 than male ones."""
    import librosa

    root, _, _ = corpus
    df = pd.read_csv(root / "VideoDemographics.csv").set_index("ActorID")
    f0s: dict[str, list[float]] = defaultdict(list)
    for p in root.glob("*_NEU_XX.wav"):
        y, sr = sf.read(p, dtype="float32")
        f0 = librosa.yin(y, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=256)
        rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=256)[0]
        f0s[df.loc[int(p.name[:4]), "Sex"]].append(float(np.median(f0[rms > 0.5 * rms.max()])))
    assert np.median(f0s["Female"]) > 1.4 * np.median(f0s["Male"])


def test_second_call_reuses(corpus):
    root, _, _ = corpus
    before = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    t0 = time.perf_counter()
    assert demo.generate(root) == root
    assert time.perf_counter() - t0 < 1.0
    assert {p.name: p.stat().st_mtime_ns for p in root.iterdir()} == before


def test_determinism_and_overwrite(tmp_path):
    small = {"n_speakers": 2, "sentences": ("IEO", "TSI")}
    a = demo.generate(tmp_path / "a", seed=3, **small)
    b = demo.generate(tmp_path / "b", seed=3, **small)
    c = demo.generate(tmp_path / "c", seed=4, **small)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert len([n for n in da if n.endswith(".wav")]) == _expected_count(2, ("IEO", "TSI"))
    assert da == db
    wavs = [n for n in da if n.endswith(".wav")]
    assert set(wavs) <= set(dc)
    assert all(da[n] != dc[n] for n in wavs)

    # Other parameters replace a previous generated corpus; overwrite forces a redo.
    old_marker = (a / demo.MARKER_FILE).read_text()
    demo.generate(a, seed=5, **small)
    assert (a / demo.MARKER_FILE).read_text() != old_marker
    mtime = (a / demo.MARKER_FILE).stat().st_mtime_ns
    time.sleep(0.01)
    demo.generate(a, seed=5, overwrite=True, **small)
    assert (a / demo.MARKER_FILE).stat().st_mtime_ns != mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_foreign_folder_is_never_replaced(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    assert not demo.is_demo_path(foreign)
    for overwrite in (False, True):
        with pytest.raises(FileExistsError):
            demo.generate(foreign, n_speakers=1, sentences=("TSI",), overwrite=overwrite)
    assert (foreign / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        demo.generate(tmp_path / "x", n_speakers=0)
    with pytest.raises(ValueError):
        demo.generate(tmp_path / "x", sentences=("ieo",))
    with pytest.raises(ValueError):
        demo.generate(tmp_path / "x", seed=-1)


def test_default_path_and_ensure(monkeypatch):
    assert demo.default_path().parent == config.cache_dir()
    assert demo.default_path().name == "demo-corpus-v1"
    seen = {}

    def fake_generate(dest, **kwargs):
        seen.update(dest=dest, **kwargs)
        return Path(dest)

    monkeypatch.setattr(demo, "generate", fake_generate)
    progress = lambda done, total: None  # noqa: E731
    assert demo.ensure(progress) == demo.default_path()
    assert seen == {"dest": demo.default_path(), "progress": progress}
    assert demo.DEMO_NAME == "SER Studio synthetic demo corpus"


@pytest.mark.slow
def test_learnable_but_not_trivial(corpus):
    """Speaker-independent emotion recognition from simple features: well above chance."""
    import librosa
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root, _, _ = corpus
    feats, labels, speakers = [], [], []
    for p in sorted(root.glob("*.wav")):
        y, sr = sf.read(p, dtype="float32")
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=40))
        mfcc = librosa.feature.mfcc(S=mel, n_mfcc=20)
        feats.append(np.concatenate([mfcc.mean(1), mfcc.std(1), mel.mean(1)]))
        spk, _, emo, _ = p.stem.split("_")
        labels.append(emo)
        speakers.append(int(spk))
    X, y, g = np.array(feats), np.array(labels), np.array(speakers)
    train = g <= 9008  # 8 speakers to train on, 4 unseen speakers to test on
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(X[train], y[train])
    acc = clf.score(X[~train], y[~train])
    print(f"demo corpus speaker-independent accuracy: {acc:.3f}")
    assert 0.40 <= acc <= 0.92
