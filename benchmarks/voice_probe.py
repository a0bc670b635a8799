"""Linear probes on the voice space (the frozen pretrained encoder's 1,792 statistics).

Exploratory figures behind README's "A pretrained voice encoder": a class-balanced,
L2-regularised logistic regression (scikit-learn) on standardised voice vectors, trained

* on CREMA-D's standard training actors and scored on its 19 test actors, with every part
  of the vector and each part alone;
* leaving one corpus out of the five-corpus pool, scored on that corpus's clips of the six
  emotions (UAR over the emotions the corpus has), and the same with every speaker's mean
  vector removed (training speakers: all their clips; each test speaker: ``--enrol`` random
  clips, not scored; not for a corpus whose speakers mostly speak in fewer than three
  emotions, where the mean would remove the emotion).

These are probes on test clips (no validation-based choice), not shipped models.

``--nested C,C,...`` adds a choice of the L2 strength made without the left-out corpus: for
each left-out corpus (speaker-centred rows), every other corpus of the pool is left out in
turn, the probe trains on the rest and scores it (``--enrol`` clips per speaker centre it,
not scored); the C with the best mean over those nested corpora is chosen, and the left-out
corpus is then scored at that C and at ``--C`` (``--draws`` draws of the enrolment clips).
Corpora whose speakers mostly speak in fewer than three emotions are left out of that part.

``--nap K,K,...`` adds a correction that needs no enrolment: the directions in which the
training speakers' mean vectors differ most (the top K principal directions of those means,
from corpora whose speakers cover three or more emotions) are projected out of every vector,
training and test alike, before the probe (nuisance attribute projection, as in speaker
verification). For each left-out corpus K is chosen by nested leave-one-corpus-out inside
its pool, as ``--nested`` chooses C, and the left-out corpus is scored at every K.

    python benchmarks/voice_probe.py --data crema-d=../shared/datasets/crema-d,\
tess=../shared/datasets/tess,savee=../shared/datasets/savee,emovo=../shared/datasets/emovo,\
urdu=../shared/datasets/urdu
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser import config  # noqa: E402
from ser.corpora import load_corpus  # noqa: E402
from ser.splits import make_split  # noqa: E402
from ser.store import FeatureStore  # noqa: E402

PARTS = {"all 1,792": slice(0, 1792), "speaker embedding": slice(0, 256),
         "layer 1": slice(256, 768), "layer 2": slice(768, 1280), "layer 3": slice(1280, 1792)}


#: Solver iterations per probe: enough for every probe to converge.
MAX_ITER = 3000


def probe(C: float, max_iter: int = MAX_ITER):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter,
                                                              class_weight="balanced"))


def report(name: str, y: np.ndarray, pred: np.ndarray) -> None:
    from sklearn.metrics import accuracy_score, recall_score

    share = np.bincount(pred, minlength=len(config.LABELS)) / len(pred)
    uar = recall_score(y, pred, labels=np.unique(y), average="macro")  # the corpus's emotions
    print(f"  {name:<36} acc {accuracy_score(y, pred):6.1%}  UAR "
          f"{uar:6.1%}  most predicted "
          f"{config.LABELS[int(share.argmax())]} {share.max():.0%}", flush=True)


def centre_by_speaker(X: np.ndarray, spk: np.ndarray) -> np.ndarray:
    out = X.copy()
    for s in np.unique(spk):
        rows = spk == s
        out[rows] -= X[rows].mean(0)
    return out


def centre_by_enrolment(X, y, spk, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Remove each speaker's mean over k random clips; those clips are not scored."""
    keep = np.ones(len(X), bool)
    out = X.copy()
    for s in np.unique(spk):
        rows = np.flatnonzero(spk == s)
        enrol = rng.choice(rows, min(k, len(rows) - 1), replace=False)
        keep[enrol] = False
        out[rows] -= X[enrol].mean(0)
    return out[keep], y[keep]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="KEY=FOLDER,... (CREMA-D first)")
    ap.add_argument("--C", type=float, default=0.003, help="inverse L2 strength")
    ap.add_argument("--enrol", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nested", metavar="C,C,...",
                    help="choose C by nested leave-one-corpus-out inside each training pool")
    ap.add_argument("--draws", type=int, default=5, help="enrolment draws for --nested")
    ap.add_argument("--nap", metavar="K,K,...",
                    help="project out the top K directions of the speakers' means (no "
                         "enrolment); K chosen by nested leave-one-corpus-out")
    ap.add_argument("--max-iter", type=int, default=MAX_ITER,
                    help="solver iterations per probe (lower: a quick, less converged look)")
    args = ap.parse_args(argv)
    if args.max_iter < MAX_ITER:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        print(f"--max-iter {args.max_iter}: probes may stop before they converge; a rough "
              "look, not figures to report", flush=True)
    store = FeatureStore()
    data = {}
    for item in args.data.split(","):
        key, folder = item.split("=", 1)
        man = load_corpus(folder).manifest
        man = man[man["emotion"] != ""].reset_index(drop=True)
        print(f"{key}: voice vectors of {len(man):,} clips (cached after the first run)",
              flush=True)
        X = np.asarray(store.features(list(man["path"]), spaces=("voice",))["voice"])
        y = man["emotion"].map({e: i for i, e in enumerate(config.LABELS)}).to_numpy()
        data[key] = (X, y, (key + ":" + man["speaker"].astype(str)).to_numpy(), man)
    first = next(iter(data))
    X, y, spk, man = data[first]
    split = make_split(man, "speaker")
    print(f"\n{first}: {split.description}; trained on {len(split.train):,} clips, scored on "
          f"{len(split.test):,} test clips (C = {args.C})")
    for name, cols in PARTS.items():
        clf = probe(args.C, args.max_iter).fit(X[split.train][:, cols], y[split.train])
        report(name, y[split.test], clf.predict(X[split.test][:, cols]))
    rng = np.random.default_rng(args.seed)
    print(f"\nLeave one corpus out (all 1,792; speaker-centred: {args.enrol} enrolment clips "
          "per test speaker, not scored)")
    for held in list(data)[1:]:
        others = [k for k in data if k != held]
        Xtr = np.concatenate([data[k][0] for k in others])
        ytr = np.concatenate([data[k][1] for k in others])
        Xt, yt, st, _ = data[held]
        report(f"{held}", yt, probe(args.C, args.max_iter).fit(Xtr, ytr).predict(Xt))
        spread = np.median([len(np.unique(yt[st == s])) for s in np.unique(st)])
        if spread < 3:  # a speaker's mean would be their emotion, not their voice
            print(f"  {held}: no speaker-centred row (a speaker's clips cover a median of "
                  f"{spread:g} emotions)")
            continue
        Xc = np.concatenate([centre_by_speaker(data[k][0], data[k][2]) for k in others])
        Xe, ye = centre_by_enrolment(Xt, yt, st, args.enrol, rng)
        clf = probe(args.C, args.max_iter).fit(Xc, ytr)
        report(f"{held}, speaker-centred", ye, clf.predict(Xe))
    Xc = centre_by_speaker(X[split.train], spk[split.train])
    Xe, ye = centre_by_enrolment(X[split.test], y[split.test], spk[split.test], args.enrol, rng)
    report(f"{first} test actors, speaker-centred", ye,
           probe(args.C, args.max_iter).fit(Xc, y[split.train]).predict(Xe))
    if args.nested:
        nested_choice(data, [float(c) for c in args.nested.split(",")], args)
    if args.nap:
        nap_choice(data, [int(k) for k in args.nap.split(",")], args)
    return 0


def centred_uar(data: dict, train: list[str], held: str, C: float, k: int, seed: int,
                max_iter: int = MAX_ITER) -> tuple[float, float]:
    """UAR and most-predicted share on ``held`` (each speaker centred by k random clips,
    not scored) of the speaker-centred probe trained on the corpora ``train``."""
    from sklearn.metrics import recall_score

    Xtr = np.concatenate([centre_by_speaker(data[c][0], data[c][2]) for c in train])
    ytr = np.concatenate([data[c][1] for c in train])
    Xt, yt, st, _ = data[held]
    Xe, ye = centre_by_enrolment(Xt, yt, st, k, np.random.default_rng(seed))
    pred = probe(C, max_iter).fit(Xtr, ytr).predict(Xe)
    share = np.bincount(pred, minlength=len(config.LABELS)).max() / len(pred)
    return recall_score(ye, pred, labels=np.unique(ye), average="macro"), share


def spread_pool(data: dict) -> list[str]:
    """The corpora whose speakers mostly speak in three or more emotions (their means are
    voices, not emotions)."""
    return [k for k, (_, y, spk, _) in data.items()
            if np.median([len(np.unique(y[spk == s])) for s in np.unique(spk)]) >= 3]


def nested_pools(pool: list[str]):
    """``(left-out corpus, the rest of the pool)`` for every corpus of ``pool`` but the
    first; one the nested choice cannot serve (fewer than three others, so leaving one of
    them out would train on one corpus or none) gets a line saying so instead."""
    for held in pool[1:]:
        rest = [k for k in pool if k != held]
        if len(rest) < 3:
            print(f"  {held}: needs at least three other corpora to leave one out inside")
            continue
        yield held, rest


def speaker_directions(X: np.ndarray, spk: np.ndarray, k: int) -> np.ndarray:
    """The top ``k`` principal directions ``(k, d)`` of the speakers' mean vectors."""
    means = np.stack([X[spk == s].mean(0) for s in np.unique(spk)])
    means -= means.mean(0)
    _, _, vt = np.linalg.svd(means, full_matrices=False)
    return vt[:k]


def nap_uar(data: dict, train: list[str], held: str, k: int, C: float, max_iter: int
            ) -> tuple[float, float]:
    """UAR and most-predicted share on every clip of ``held`` of the probe trained on
    ``train`` after the top ``k`` directions of the speakers' means are projected out."""
    from sklearn.metrics import recall_score
    from sklearn.preprocessing import StandardScaler

    Xtr = np.concatenate([data[c][0] for c in train])
    ytr = np.concatenate([data[c][1] for c in train])
    scaler = StandardScaler().fit(Xtr)
    Xs, Xt = scaler.transform(Xtr), scaler.transform(data[held][0])
    if k:
        voices = set(spread_pool({c: data[c] for c in train}))
        rows = np.concatenate([np.full(len(data[c][1]), c in voices) for c in train])
        spk = np.concatenate([data[c][2] for c in train])
        V = speaker_directions(Xs[rows], spk[rows], k)
        Xs, Xt = Xs - (Xs @ V.T) @ V, Xt - (Xt @ V.T) @ V
    pred = probe(C, max_iter).fit(Xs, ytr).predict(Xt)
    yt = data[held][1]
    share = np.bincount(pred, minlength=len(config.LABELS)).max() / len(pred)
    return recall_score(yt, pred, labels=np.unique(yt), average="macro"), share


def nap_choice(data: dict, Ks: list[int], args) -> None:
    """For each left-out corpus: K chosen by nested leave-one-corpus-out inside its pool,
    then the left-out corpus scored at every K (its own pool trains, every corpus but it)."""
    pool = spread_pool(data)
    print(f"\nSpeaker directions projected out, no enrolment (K directions of the training "
          f"speakers' means, from {', '.join(pool)}; C = {args.C:g})", flush=True)
    for held, rest in nested_pools(pool):
        means = {}
        for K in Ks:
            nested = {v: nap_uar(data, [k for k in rest if k != v], v, K, args.C,
                                 args.max_iter)[0] for v in rest}
            means[K] = float(np.mean(list(nested.values())))
            print(f"  {held} left out, K = {K}: nested UAR " + ", ".join(
                f"{v} {u:.1%}" for v, u in nested.items()) + f"; mean {means[K]:.1%}",
                flush=True)
        chosen = max(means, key=means.get)
        train = [k for k in data if k != held]
        for K in Ks:
            uar, share = nap_uar(data, train, held, K, args.C, args.max_iter)
            print(f"  {held} at K = {K}{' (chosen)' if K == chosen else ''}: UAR {uar:.1%}, "
                  f"most predicted {share:.0%}", flush=True)


def nested_choice(data: dict, Cs: list[float], args) -> None:
    """For each left-out corpus: C chosen by nested leave-one-corpus-out inside its pool,
    then the left-out corpus scored at that C and at ``args.C``."""
    pool = spread_pool(data)
    print(f"\nNested choice of C (pool: {', '.join(pool)}; speaker-centred, {args.enrol} "
          "enrolment clips per scored speaker, not scored)")
    for held, rest in nested_pools(pool):
        means = {}
        for C in Cs:
            nested = {v: centred_uar(data, [k for k in rest if k != v], v, C, args.enrol,
                                     args.seed, args.max_iter)[0] for v in rest}
            means[C] = float(np.mean(list(nested.values())))
            print(f"  {held} left out, C = {C:g}: nested UAR " + ", ".join(
                f"{v} {u:.1%}" for v, u in nested.items()) + f"; mean {means[C]:.1%}",
                flush=True)
        chosen = max(means, key=means.get)
        for C, why in ((chosen, "chosen"), (args.C, "--C")):
            r = np.array([centred_uar(data, rest, held, C, args.enrol, args.seed + d,
                                      args.max_iter)
                          for d in range(args.draws)])
            print(f"  {held} at C = {C:g} ({why}): UAR {r[:, 0].mean():.1%} ± "
                  f"{r[:, 0].std():.1%} over {args.draws} draws, most predicted "
                  f"{r[:, 1].mean():.0%}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
