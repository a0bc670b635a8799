import numpy as np
import pandas as pd
import pytest

from ser import config, splits
from ser.corpora.crema_d import STANDARD_TEST_ACTORS, STANDARD_VALIDATION_ACTORS


def fake_manifest(n_speakers=20, per_cell=3, dataset="demo"):
    rows = []
    for s in range(n_speakers):
        for e in config.LABELS:
            for k in range(per_cell):
                rows.append({"path": f"/x/{s}_{e}_{k}.wav", "dataset": dataset,
                             "speaker": f"{1001 + s}", "sentence": ["DFA", "IEO", "TIE"][k % 3],
                             "emotion": e, "clip": f"{1001 + s}_{e}_{k}"})
    return pd.DataFrame(rows)


def test_tfds_recipe_reproduces_standard_crema_lists():
    ids = [str(i) for i in range(1001, 1092)]
    train, val, test = splits.shuffled_actor_partition(ids, 0)
    assert tuple(val) == STANDARD_VALIDATION_ACTORS
    assert tuple(test) == STANDARD_TEST_ACTORS
    assert len(train) == 63


def test_speaker_independent_has_no_overlap():
    m = fake_manifest()
    sp = splits.speaker_independent(m, seed=3)
    spk = m["speaker"].to_numpy()
    parts = [set(spk[p]) for p in (sp.train, sp.val, sp.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(sp.train) + len(sp.val) + len(sp.test) == len(m)
    assert splits.check_leakage(sp, m, hashes=list(m["clip"])).clean


def test_speaker_independent_crema_uses_standard_lists():
    m = fake_manifest(91, 1, dataset="crema-d")
    sp = splits.speaker_independent(m)
    assert sorted(m["speaker"].iloc[sp.test].unique()) == list(STANDARD_TEST_ACTORS)
    assert sorted(m["speaker"].iloc[sp.val].unique()) == list(STANDARD_VALIDATION_ACTORS)


def test_random_stratified_ratios_and_determinism():
    m = fake_manifest(20, 5)
    a = splits.random_stratified(m, seed=1)
    b = splits.random_stratified(m, seed=1)
    c = splits.random_stratified(m, seed=2)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test, c.test)
    assert len(a.test) == pytest.approx(0.3 * len(m), abs=1)
    assert len(a.val) == pytest.approx(0.05 * (len(m) - len(a.test)), abs=2)
    for part in (a.train, a.test):
        frac = m["emotion"].iloc[part].value_counts(normalize=True)
        assert (abs(frac - 1 / 6) < 0.01).all()
    assert sorted(np.concatenate([a.train, a.val, a.test]).tolist()) == list(range(len(m)))
    report = splits.check_leakage(a, m, hashes=list(m["clip"]))
    assert not report.clean and report.shared_speakers["train/test"]
    assert "LEAKAGE" in report.text()


def test_leakage_finds_identical_audio():
    m = fake_manifest(10, 1)
    sp = splits.speaker_independent(m, seed=0)
    hashes = list(m["clip"])
    hashes[sp.test[0]] = hashes[sp.train[0]]  # same recording on both sides
    rep = splits.check_leakage(sp, m, hashes=hashes)
    assert not rep.clean and len(rep.shared_audio["train/test"]) == 1


def test_kfold_covers_every_speaker_once_in_test():
    m = fake_manifest(10, 1)
    folds = splits.actor_kfold(m, k=5, seed=0)
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(m)))
    for f in folds:
        assert splits.check_leakage(f, m, hashes=list(m["clip"])).clean


def test_make_split_errors():
    with pytest.raises(ValueError, match="Unknown split protocol"):
        splits.make_split(fake_manifest(), "weird")


def test_loco_is_a_protocol_and_cards_keep_their_keys():
    assert "loco" in splits.PROTOCOLS
    assert splits.PROTOCOL_NAMES["loco"] == "leave-one-corpus-out"
    m = fake_manifest(10, 1, dataset="crema-d")
    card = splits.make_split(m, "speaker", seed=2).card(m)
    assert {"protocol", "protocol_name", "description", "seed", "counts", "speakers"} <= set(
        card)
    assert card["corpora"] == ["crema-d"] and card["outside_six"] == 0
    assert "test_corpus" not in card
    kcard = splits.make_split(m, "kfold", fold=2, k=5).card(m)
    assert (kcard["fold"], kcard["k"]) == (2, 5)
    rebuilt = splits.split_from_card(m, kcard)
    np.testing.assert_array_equal(rebuilt.test, splits.make_split(m, "kfold", fold=2).test)


def test_outside_six_rows_stay_in_manifest_but_out_of_parts():
    m = fake_manifest(10, 2)
    extra = m.iloc[:5].assign(emotion="", clip=lambda d: d["clip"] + "_calm")
    m = pd.concat([extra, m], ignore_index=True)  # row positions shift: splits must cope
    for protocol in ("speaker", "random", "kfold"):
        sp = splits.make_split(m, protocol, seed=0)
        used = np.concatenate(list(sp.parts().values()))
        assert not set(used) & set(range(5)), protocol
        assert len(used) == len(m) - 5
        assert sp.card(m)["outside_six"] == 5
