"""Pools of corpora: namespacing, per-corpus speaker splits, leave-one-corpus-out, weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import noise_clip as noise

from ser import config, splits
from ser.corpora import (
    CorpusError,
    load_corpus,
    load_pool,
    parse_pool_spec,
    pool_spec_string,
    summary,
)
from ser.corpora.crema_d import STANDARD_TEST_ACTORS, STANDARD_VALIDATION_ACTORS


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Three small corpora: RAVDESS (8 actors, calm/surprised too), TESS (2 speakers,
    ps too) and EMOVO (6 speakers, sor too)."""
    root = tmp_path_factory.mktemp("pool")
    rav, tess, emovo = root / "ravdess", root / "tess", root / "emovo"
    for actor in range(1, 9):
        for emo in range(1, 9):
            noise(rav / f"Actor_{actor:02d}" / f"03-01-{emo:02d}-01-01-01-{actor:02d}.wav")
    for spk in ("OAF", "YAF"):
        for word in ("back", "dog"):
            for emo in ("angry", "disgust", "fear", "happy", "neutral", "sad", "ps"):
                noise(tess / f"{spk}_{word}_{emo}.wav")
    for spk in ("f1", "f2", "f3", "m1", "m2", "m3"):
        for emo in ("rab", "dis", "pau", "gio", "neu", "tri", "sor"):
            noise(emovo / spk / f"{emo}-{spk}-b1.wav")
    return {"ravdess": rav, "tess": tess, "emovo": emovo}


@pytest.fixture(scope="module")
def pool(folders):
    return load_pool([folders["ravdess"], folders["tess"], folders["emovo"]])


def test_pool_namespaces_speakers_and_clips(pool, folders):
    m = pool.manifest
    assert pool.key == "pool" and pool.name == "RAVDESS + TESS + EMOVO"
    assert [c.key for c in pool.members] == ["ravdess", "tess", "emovo"]
    assert len(m) == 64 + 28 + 42
    assert {"tess:OAF", "tess:YAF", "ravdess:01", "emovo:f1"} <= set(m["speaker"])
    assert "tess/OAF_back_angry" in set(m["clip"]) and m["clip"].is_unique
    assert m.loc[m["corpus"] == "emovo", "sentence"].eq("emovo:b1").all()
    assert list(dict.fromkeys(m["corpus"])) == ["ravdess", "tess", "emovo"]
    assert (m["dataset"] == m["corpus"]).all()
    assert set(m.loc[m["corpus"] == "emovo", "language"]) == {"it"}
    s = summary(pool)
    assert s["corpora"] == ["ravdess", "tess", "emovo"]
    assert s["per_corpus"]["tess"]["name"] == "TESS"
    assert s["per_corpus"]["ravdess"]["outside_six"] == 16  # calm + surprised × 8 actors
    assert s["outside_six"] == 16 + 4 + 6
    assert s["outside_six_labels"] == {"calm": 8, "surprised": 8, "ps": 4, "sor": 6}


def test_pool_of_one_is_the_corpus(folders):
    alone = load_corpus(folders["tess"])
    one = load_pool([folders["tess"]])
    pd.testing.assert_frame_equal(one.manifest, alone.manifest)
    assert one.name == "TESS" and one.key == "tess"
    assert load_pool([alone]) is alone


def test_data_string_loads_the_same_pool(pool, folders):
    text = pool_spec_string(pool.members)
    assert text == ",".join(str(folders[k]) for k in ("ravdess", "tess", "emovo"))
    assert pool_spec_string([pool]) == text
    again = load_corpus(text)
    pd.testing.assert_frame_equal(again.manifest, pool.manifest)
    assert again.source == "chosen folder"
    spaced = f"{folders['ravdess']} , tess={folders['tess']}"
    assert parse_pool_spec(spaced, ("tess",)) == [(None, folders["ravdess"]),
                                                  ("tess", folders["tess"])]
    assert load_corpus(spaced).name == "RAVDESS + TESS"
    with pytest.raises(ValueError, match="comma"):
        pool_spec_string(["/data/a,b"])


def test_pool_errors(folders):
    with pytest.raises(CorpusError, match="listed twice"):
        load_pool([folders["tess"], folders["tess"]])
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(f"{folders['tess']},{folders['tess'].parent / 'nope'}")
    with pytest.raises(CorpusError, match="prefix each folder"):
        load_corpus(f"{folders['tess']},{folders['emovo']}", kind="tess")


def parts_of(split) -> dict[str, np.ndarray]:
    return split.parts()


def test_pool_speaker_split_is_inside_each_corpus(pool, folders):
    m = pool.manifest
    sp = splits.make_split(m, "speaker", seed=0)
    spk, corp = m["speaker"].to_numpy(), m["corpus"].to_numpy()
    sets = {k: set(spk[v]) for k, v in parts_of(sp).items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"])
    assert not (sets["val"] & sets["test"])
    used = np.concatenate(list(parts_of(sp).values()))
    assert len(used) == len(set(used))
    # Only the six emotions, and every six-emotion clip placed.
    assert set(m["emotion"].iloc[used]) <= set(config.LABELS)
    assert len(used) == m["emotion"].isin(config.LABELS).sum()
    # Corpora with ≥ 3 speakers appear in every part; TESS (2 speakers) only in training.
    for key in ("ravdess", "emovo"):
        for part in ("train", "val", "test"):
            assert (corp[getattr(sp, part)] == key).any(), (key, part)
    assert not (corp[sp.val] == "tess").any() and not (corp[sp.test] == "tess").any()
    assert (corp[sp.train] == "tess").sum() == 24
    assert "TESS has 2 speakers, all in training" in sp.description
    # Each corpus is split exactly as it would be alone.
    alone = load_corpus(folders["emovo"]).manifest
    sa = splits.make_split(alone, "speaker", seed=0)
    assert sorted("emovo:" + s for s in set(alone["speaker"].iloc[sa.test])) == sorted(
        s for s in sets["test"] if s.startswith("emovo:"))
    assert splits.check_leakage(sp, m, hashes=list(m["clip"])).clean
    card = sp.card(m)
    assert card["corpora"] == ["ravdess", "tess", "emovo"]
    assert card["per_corpus"]["tess"] == {"train": 24, "val": 0, "test": 0}
    assert card["outside_six"] == 26


def test_small_corpus_alone_still_refuses_a_speaker_split(folders):
    m = load_corpus(folders["tess"]).manifest
    with pytest.raises(ValueError, match="needs at least 3 speakers; the corpus has 2"):
        splits.make_split(m, "speaker")


def test_outside_six_never_in_single_corpus_parts(folders):
    m = load_corpus(folders["ravdess"]).manifest
    for protocol in ("speaker", "random", "kfold"):
        sp = splits.make_split(m, protocol, seed=1, k=4)
        used = np.concatenate(list(sp.parts().values()))
        assert set(m["emotion"].iloc[used]) <= set(config.LABELS), protocol
        assert len(used) == 48
        assert "16 clips with labels outside the six left out" in sp.description


def test_loco(pool):
    m = pool.manifest
    sp = splits.make_split(m, "loco", test_corpus="tess", seed=0)
    corp, emo = m["corpus"].to_numpy(), m["emotion"].to_numpy()
    expected = np.flatnonzero((corp == "tess") & np.isin(emo, config.LABELS))
    np.testing.assert_array_equal(np.sort(sp.test), expected)
    for part in (sp.train, sp.val):
        assert not (corp[part] == "tess").any()
    used = np.concatenate(list(sp.parts().values()))
    assert set(emo[used]) <= set(config.LABELS)
    assert len(used) == np.isin(emo, config.LABELS).sum()
    # Validation speakers come from each remaining corpus, never shared with training.
    spk = m["speaker"].to_numpy()
    assert {c for c in corp[sp.val]} == {"ravdess", "emovo"}
    assert not set(spk[sp.val]) & set(spk[sp.train])
    card = sp.card(m)
    assert card["protocol"] == "loco" and card["test_corpus"] == "tess"
    assert card["protocol_name"] == "leave-one-corpus-out"
    assert card["per_corpus"]["tess"]["test"] == 24 and card["counts"]["test"] == 24
    rebuilt = splits.split_from_card(m, card)
    for a, b in zip(rebuilt.parts().values(), sp.parts().values()):
        np.testing.assert_array_equal(a, b)
    # The 2-speaker corpus can still train when another corpus is held out.
    sp2 = splits.make_split(m, "loco", test_corpus="EMOVO")
    assert (corp[sp2.train] == "tess").sum() == 24 and sp2.test_corpus == "emovo"


def test_loco_errors(pool, folders):
    with pytest.raises(ValueError, match="at least two corpora.*TESS"):
        splits.make_split(load_corpus(folders["tess"]).manifest, "loco", test_corpus="tess")
    with pytest.raises(ValueError, match="'savee' is not in this pool; choose one of ravdess"):
        splits.make_split(pool.manifest, "loco", test_corpus="savee")
    with pytest.raises(ValueError, match="set test_corpus"):
        splits.make_split(pool.manifest, "loco")


def test_random_on_pool_keeps_each_corpus_share(pool):
    m = pool.manifest
    sp = splits.make_split(m, "random", seed=0)
    used = np.concatenate(list(sp.parts().values()))
    assert set(m["emotion"].iloc[used]) <= set(config.LABELS)
    frac = m["corpus"].iloc[sp.test].value_counts(normalize=True)
    assert frac["ravdess"] == pytest.approx(48 / 108, abs=0.05)


def fake_pool() -> pd.DataFrame:
    """CREMA-D's 91 actors + a 10-speaker corpus with uneven classes, namespaced."""
    rows = []
    for a in range(1001, 1092):
        for e in config.LABELS:
            rows.append({"corpus": "crema-d", "dataset": "crema-d", "speaker": f"crema-d:{a}",
                         "emotion": e, "sentence": "", "clip": f"crema-d/{a}_{e}",
                         "path": f"/x/{a}_{e}.wav"})
    for s in range(10):
        for e, n in zip(config.LABELS, (1, 2, 3, 4, 5, 6)):
            for i in range(n):
                rows.append({"corpus": "other", "dataset": "other", "speaker": f"other:{s}",
                             "emotion": e, "sentence": "", "clip": f"other/{s}_{e}_{i}",
                             "path": f"/y/{s}_{e}_{i}.wav"})
    return pd.DataFrame(rows)


def test_crema_d_keeps_its_standard_lists_inside_a_pool():
    m = fake_pool()
    sp = splits.make_split(m, "speaker", seed=5)
    test_spk = set(m["speaker"].iloc[sp.test])
    val_spk = set(m["speaker"].iloc[sp.val])
    assert {s for s in test_spk if s.startswith("crema-d:")} == {
        f"crema-d:{a}" for a in STANDARD_TEST_ACTORS}
    assert {s for s in val_spk if s.startswith("crema-d:")} == {
        f"crema-d:{a}" for a in STANDARD_VALIDATION_ACTORS}
    assert any(s.startswith("other:") for s in test_spk)
    assert "CREMA-D standard actor lists" in sp.description
    report = splits.check_leakage(sp, m, hashes=list(m["clip"]))
    assert report.clean and report.shared_sentences == {"train/test": 0, "val/test": 0}


def test_class_balance_weights():
    m = fake_pool()
    rows = np.arange(len(m))[::-1]  # any order: weights follow rows
    w = splits.class_balance_weights(m, rows)
    assert w.shape == (len(rows),) and w.mean() == pytest.approx(1.0)
    df = pd.DataFrame({"w": w, "corpus": m["corpus"].iloc[rows].to_numpy(),
                       "emotion": m["emotion"].iloc[rows].to_numpy()})
    per_corpus = df.groupby("corpus")["w"].sum()
    assert per_corpus["crema-d"] == pytest.approx(per_corpus["other"])
    per_class = df[df["corpus"] == "other"].groupby("emotion")["w"].sum()
    assert np.allclose(per_class, per_class.iloc[0])
    # One group only: plain class balance; no corpus column: the dataset column is used.
    w1 = splits.class_balance_weights(m.drop(columns="corpus"), rows, by=("corpus",))
    sums = pd.Series(w1).groupby(m["dataset"].iloc[rows].to_numpy()).sum()
    assert sums["crema-d"] == pytest.approx(sums["other"])
    assert splits.class_balance_weights(m, []).shape == (0,)


def test_pool_from_environment(folders, monkeypatch):
    monkeypatch.setenv("SER_DATA_DIR", f"{folders['tess']},{folders['emovo']}")
    c = load_corpus()
    assert c.name == "TESS + EMOVO" and c.source == "SER_DATA_DIR"


def test_vote_weights_favour_the_clips_whose_emotion_the_raters_heard():
    """``vote_weight``: a CREMA-D clip whose intended emotion is not among the raters'
    voice-only votes is drawn ``unheard`` times as often as one whose emotion they heard (a
    tie that names it counts as heard); every corpus and emotion keeps one draw per clip on
    average; clips without a vote weigh 1."""
    m = fake_pool()
    crema = m["corpus"] == "crema-d"
    votes = np.where(m["emotion"] == "sad", "neutral", m["emotion"]).astype(object)
    votes[(m["emotion"] == "sad").to_numpy() & (m["speaker"] < "crema-d:1031").to_numpy()] = \
        "neutral:sad"
    m["human_vote"] = np.where(crema, votes, np.nan)
    rows = np.arange(len(m))
    w = splits.vote_weights(m, rows, 0.25)
    df = pd.DataFrame({"w": w, "corpus": m["corpus"], "emotion": m["emotion"],
                       "vote": m["human_vote"]})
    assert np.allclose(df.groupby(["corpus", "emotion"])["w"].mean(), 1.0)
    sad = df[crema & (df["emotion"] == "sad")]
    heard, unheard = sad[sad["vote"] == "neutral:sad"], sad[sad["vote"] == "neutral"]
    assert len(heard) == 30 and len(unheard) == 61
    assert np.allclose(unheard["w"] / heard["w"].iloc[0], 0.25)
    assert np.allclose(df.loc[crema & (df["emotion"] != "sad"), "w"], 1.0)  # all heard
    assert np.allclose(df.loc[~crema, "w"], 1.0)
    # weights follow the rows asked for; no votes anywhere → None
    back = splits.vote_weights(m, rows[::-1], 0.25)
    np.testing.assert_allclose(back, w[::-1])
    assert splits.vote_weights(m.drop(columns="human_vote"), rows, 0.25) is None
    assert splits.vote_weights(m.assign(human_vote=""), rows, 0.25) is None
