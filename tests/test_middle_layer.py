"""The middle layer: import graph, the typed card, the data path, the loop's helpers.

Known-answer tests: every expected figure below is worked out by hand in the test.
"""

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ser.card import Card
from ser.dataset import fit_normalisation, prepare, select
from ser.metrics import classification_metrics
from ser.recipe import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def import_graph() -> dict[str, set[str]]:
    """Module → the ``ser`` modules it imports (anywhere in the file, functions included)."""
    graph = {}
    for path in (ROOT / "ser").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                    "ser"):
                deps.add(node.module)
                # `from ser import config` imports the submodule ser.config
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("ser"))
        graph[name] = deps
    return {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}


def test_no_import_cycle_in_ser():
    graph = import_graph()
    # A package importing its own submodules (ser.models → ser.models.lenet) is not a
    # cycle of design; a submodule importing the package back through it is.
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for dep in graph[node]:
            if dep.startswith(node + "."):
                continue  # the package's own __init__ registering its children
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep] if dep in stack else [node, dep]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_corpus_info_does_not_import_torch(demo_root):
    code = ("import sys; from ser.cli import main; "
            f"rc = main(['corpus', 'info', {str(demo_root)!r}, '--no-quirks']); "
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("NO-TORCH 0"), out.stdout[-500:]


def test_fit_reads_on_one_screen():
    from ser.training import fit

    assert len(inspect.getsource(fit).splitlines()) <= 70


# ------------------------------------------------------------------------ metrics

def test_metrics_known_answer_on_a_hand_made_confusion():
    # 3 classes (of 6); true 0: 3 clips (2 right, 1 → class 1); true 1: 2 clips (both
    # right); true 2: 1 clip (→ class 0).
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 1, 0])
    probs = np.full((6, 6), 0.02)
    probs[np.arange(6), pred] = 0.9
    m = classification_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls 2/3, 1, 0 → UAR over the 3 classes present
    assert m["uar"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # precision: class 0 2/3, class 1 2/3, class 2 0; F1: 2/3, 0.8, 0
    assert m["macro_precision"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert m["confusion_matrix"][0][:3] == [2, 1, 0] and m["confusion_matrix"][2][:3] == [1, 0, 0]
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.9, 0.02, 0.9, 0.9, 0.02])))


# ------------------------------------------------------------------------ loop helpers

def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 6))


def test_best_weights_stop_after_patience_and_restore_the_best():
    from ser.training import BestWeights

    model = tiny_model()
    best = BestWeights(patience=2)
    assert best.update(0.5, 1, model)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[1].weight.add_(1.0)
    assert not best.update(0.5, 2, model)  # equal is not better
    assert not best.exhausted
    assert not best.update(0.4, 3, model)
    assert best.exhausted and best.epoch == 1 and best.uar == 0.5
    best.restore(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k])
    assert not BestWeights(patience=0).exhausted


def test_each_schedule_moves_the_learning_rate_as_documented():
    from ser.training import Schedule

    def opt():
        return torch.optim.Adam(tiny_model().parameters(), lr=1e-3)

    o = opt()
    s = Schedule("none", o, 1e-3, 2, 10)
    s.after_step()
    s.after_epoch(0.1)
    assert o.param_groups[0]["lr"] == 1e-3
    o = opt()
    s = Schedule("cosine", o, 1e-3, 2, 10)
    lrs = []
    for _ in range(20):
        lrs.append(o.param_groups[0]["lr"])
        o.step()
        s.after_step()
    peak = int(np.argmax(lrs))
    # warm-up over 15 % of the 20 steps: the peak is reached after 0.15 · 20 - 1 = 2 steps
    assert lrs[0] < 1e-4 and lrs[peak] == pytest.approx(1e-3) and peak == 2
    assert lrs[-1] < 1e-5 and all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:]))
    o = opt()
    s = Schedule("plateau", o, 1e-3, 10, 10)
    for uar in (0.5, 0.5, 0.5, 0.5):  # best at the first; 3 epochs without improvement
        s.after_epoch(uar)
    assert o.param_groups[0]["lr"] == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="schedule"):
        Schedule("linear", opt(), 1e-3, 1, 1)


def test_class_weights_are_inverse_frequency():
    from types import SimpleNamespace

    from ser.training import class_weights

    labels = torch.tensor([0] * 6 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 2 + [5] * 1)
    data = SimpleNamespace(labels={"train": labels})
    w = class_weights(TrainConfig(class_weights=True), data, torch.device("cpu"))
    # N / (C · n_c) with N = 18, C = 6
    np.testing.assert_allclose(w.numpy(), [0.5, 1, 1, 1, 1.5, 3], rtol=1e-6)
    assert class_weights(TrainConfig(), data, torch.device("cpu")) is None


def test_label_smoothing_and_gradient_clipping_in_one_step():
    from ser.training import TrainStep

    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: look at gradients only
    step = TrainStep(model, opt, None, 0.1, 0.05, torch.device("cpu"))
    x, y = torch.randn(8, 1, 4) * 50, torch.randint(0, 6, (8,))
    logits = model(x)
    logp = torch.log_softmax(logits, 1)
    # smoothing ε spreads ε/C over every class and keeps 1-ε on the target
    target = torch.full((8, 6), 0.1 / 6).scatter_(1, y[:, None], 1 - 0.1 + 0.1 / 6)
    expected = -(target * logp).sum(1).mean()
    assert step.loss(logits, y).item() == pytest.approx(expected.item(), rel=1e-5)
    step([x], y)
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    assert norm.item() == pytest.approx(0.05, rel=1e-4)  # large inputs: clipped to 0.05
    assert step.count == 1


# ------------------------------------------------------------------------ data path

@pytest.mark.slow
def test_normalisation_is_fitted_on_training_clips_only(demo_root):
    from ser.store import FeatureStore

    cfg = TrainConfig(arch="lenet1d", max_clips=150, noise=False, seed=1)
    data = prepare(cfg, "fs1")
    sel = data.selection
    feats = FeatureStore().features(list(sel.manifest["path"]), spaces=("fs1",))
    train_only = fit_normalisation({"fs1": np.asarray(feats["fs1"])[sel.split.train]})
    everything = fit_normalisation({"fs1": np.asarray(feats["fs1"])})
    np.testing.assert_allclose(data.normalisation["fs1"]["mean"], train_only["fs1"]["mean"],
                               rtol=1e-6)
    assert not np.allclose(data.normalisation["fs1"]["mean"], everything["fs1"]["mean"])
    # the training inputs are standardised with those statistics: mean 0 per dimension
    x = data.inputs["train"][0].numpy()[:, 0, :]
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)


def test_normalising_in_place_gives_the_same_inputs_and_spares_a_copy(demo_root):
    """Regression: prepare() held the training part twice (raw and standardised), 14 GB at
    the peak of a three-copy leave-one-corpus-out run; now it standardises its own arrays
    where they are. A view or read-only array (the feature cache) is never written to."""
    from ser.dataset import normalise

    rng = np.random.default_rng(0)
    stats = {"fs1": {"mean": rng.normal(size=169).astype(np.float32),
                     "std": rng.uniform(0.5, 2, 169).astype(np.float32)},
             "fs2": {"mean": rng.normal(size=128).astype(np.float32),
                     "std": rng.uniform(0.5, 2, 128).astype(np.float32)}}
    for space, shape in (("fs1", (7, 169)), ("fs2", (5, 128, 216))):
        x = rng.normal(size=shape).astype(np.float32)
        want = normalise(space, x, stats[space])
        assert not np.shares_memory(want.numpy(), x)
        own = x.copy()
        got = normalise(space, own, stats[space], inplace=True)
        assert np.shares_memory(got.numpy(), own) and got.shape == want.shape
        torch.testing.assert_close(got, want)
        cache = x.copy()
        cache.flags.writeable = False
        view = x.copy()[1:]
        for other in (cache, view, x.astype(np.float64)):
            before = other.copy()
            torch.testing.assert_close(normalise(space, other, stats[space], inplace=True),
                                       normalise(space, before, stats[space]))
            np.testing.assert_array_equal(other, before)


def test_prepare_stacks_the_augmented_copies_once(demo_root, tmp_path):
    """Regression: prepare() stacked the cached copies into one array and then stacked
    that with the originals, so at its peak a three-copy run held the copies twice (about
    3 of the 9.6 GB of a general-recipe run), and a cold cache kept the batches it had just
    extracted in memory beside them. Now extracted batches are read back memory-mapped and
    the originals and the copies are concatenated in one step: the peak stays near the
    training array itself."""
    import tracemalloc

    from ser.dataset import training_features
    from ser.store import FeatureStore

    cfg = TrainConfig(arch="lenet2d", max_clips=60, noise=True, pitch=True, copies=3,
                      seed=5)
    store = FeatureStore(tmp_path / "cache", cfg=cfg.feature_config(), workers=2)
    # cold: extracted here, then handed over as memory maps of what was just cached
    feats, parts = training_features(cfg, select(cfg), store=store, stacked=False)
    assert len(parts) == 3
    assert all(isinstance(a["fs2"], np.memmap) for a in [feats, *parts])
    cold = prepare(cfg, "fs2", store=store)
    tracemalloc.start()
    try:
        warm = prepare(cfg, "fs2", store=store)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    train = warm.inputs["train"][0]
    n = len(warm.selection.split.train)
    assert len(train) == 4 * n and warm.n_augmented == 3 * n
    torch.testing.assert_close(train, cold.inputs["train"][0])
    # originals + 3 copies in one array (4n rows), plus the originals' own index copy (n)
    # and the small validation and test parts; holding the copies twice would add 3n.
    row = train[0].numel() * 4
    assert peak < 6.2 * n * row, peak / (n * row)


def test_select_repeats_the_recorded_sample_and_fold(demo_root):
    cfg = TrainConfig(split="kfold", fold=2, max_clips=200, seed=4)
    a, b = select(cfg), select(cfg)
    assert a.fingerprint == b.fingerprint and len(a.manifest) == 200
    np.testing.assert_array_equal(a.split.test, b.split.test)
    other = select(TrainConfig(split="kfold", fold=0, max_clips=200, seed=4))
    assert set(a.part("test")["clip"]).isdisjoint(other.part("test")["clip"])


@pytest.mark.slow
def test_evaluate_scores_a_kfold_bundle_on_its_own_fold(demo_root, tmp_path, monkeypatch):
    """Regression: `python -m ser evaluate` split the full manifest with fold 0 and without
    max_clips, so a fold-2 model was scored on other clips, some of them its training clips."""
    from ser import runs

    monkeypatch.setenv("SER_RUNS_DIR", str(tmp_path / "runs"))  # not in the pages' list

    run_id = runs.create(TrainConfig(arch="lenet1d", epochs=1, noise=False, split="kfold",
                                     fold=2, max_clips=240, seed=3))
    assert runs.execute(run_id) == 0
    d = runs.run_dir(run_id)
    out = subprocess.run([sys.executable, "-m", "ser", "evaluate", str(d / "model.pt"),
                          "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    saved = json.loads((d / "report.json").read_text())
    assert rep["n"] == saved["n"] and rep["accuracy"] == pytest.approx(saved["accuracy"])
    assert rep["protocol"]["description"].endswith("fold 3/5, seed 0")
    assert rep["data"]["fingerprint_matches"] is True
    import pandas as pd

    card = Card.from_json(d / "card.json")
    test_clips = set(pd.read_csv(d / "predictions.csv")["clip"])
    train = select(card.training).part("train")
    assert not test_clips & set(train["clip"])


# ------------------------------------------------------------------------ the card

def test_every_shipped_card_reads_and_round_trips():
    cards = sorted((ROOT / "models").glob("*/card.json"))
    assert cards, "no shipped models"
    for path in cards:
        raw = json.loads(path.read_text())
        card = Card.from_dict(raw)
        assert card.test is not None and 0 < card.test.accuracy < 1, path
        assert card.training.arch == card.arch
        # version-1 cards kept the facts of the run inside "training"
        assert "epochs_run" in card.run and not hasattr(card.training, "epochs_run")
        again = Card.from_dict(card.to_dict())
        assert again.to_dict() == card.to_dict()
        assert again.extra.get("weights_sha256") == raw.get("weights_sha256")
        assert "split on CREMA-D" in card.protocol_caption()


def test_train_config_from_a_card_is_the_recipe(tmp_path):
    from ser.cli import build_parser
    from ser.cli.model_commands import _config_from_args

    path = ROOT / "models" / "ser2d.crema-si-pitch-x3" / "card.json"
    args = build_parser().parse_args(["train", "--config", str(path), "--data", "/x"])
    cfg = _config_from_args(args)
    raw = json.loads(path.read_text())["training"]
    assert cfg.arch == "ser2d" and cfg.copies == raw["copies"] == 3 and cfg.pitch
    assert cfg.lr == raw["lr"] and cfg.epochs == 12 and cfg.threads == raw["threads"]
    assert cfg.data == "/x"  # a flag given on the command line wins
    args = build_parser().parse_args(["train", "--arch", "lenet2d", "--feature", "n_mels=64"])
    assert _config_from_args(args).feature_config().n_mels == 64
    with pytest.raises(ValueError, match="Unknown feature setting"):
        TrainConfig(features={"mels": 3}).check()


@pytest.mark.slow
def test_a_run_with_another_feature_config_trains_and_predicts(demo_root, tmp_path):
    from conftest import write_clip

    from ser.inference import Predictor
    from ser.training import fit

    cfg = TrainConfig(arch="ser2d", epochs=1, noise=False, max_clips=120, seed=2,
                      features={"n_mels": 64, "n_mfcc": 13})
    res = fit(cfg)
    assert res.card.features.n_mels == 64 and res.card.model_kwargs["n_mels"] == 64
    from ser.bundle import save_bundle

    save_bundle(tmp_path / "model.pt", res.model, res.card)
    p = Predictor(tmp_path / "model.pt").predict(write_clip(tmp_path / "c.wav", 2.0))
    assert p.probs.shape == (6,)


def test_one_resolver_of_model_names_for_training_and_tools(tmp_path, monkeypatch):
    """Distillation teachers and the CLI/benchmarks resolve names through `ser.names` alone
    (the training loop cannot import the zoo), so both accept the same things."""
    from ser.ensemble import bundle_paths
    from ser.names import BUNDLE_FILE, ENSEMBLE_FILE, bundle_files

    models = tmp_path / "models"
    for n in ("a.x", "b.y"):
        (models / n).mkdir(parents=True)
        (models / n / BUNDLE_FILE).write_bytes(b"not read here")
    (models / ENSEMBLE_FILE).write_text('{"members": ["b.y", "gone"]}')
    monkeypatch.setenv("SER_MODELS_DIR", str(models))
    loose = tmp_path / "m.pt"
    loose.write_bytes(b"x")
    cases = {"a.x": [models / "a.x" / BUNDLE_FILE],
             "ensemble": [models / "b.y" / BUNDLE_FILE],  # a listed member that is gone: left out
             str(models / "a.x"): [models / "a.x" / BUNDLE_FILE],
             str(models): [models / n / BUNDLE_FILE for n in ("a.x", "b.y")],
             str(loose): [loose], "nothing": [], "../a.x": []}
    for arg, want in cases.items():
        assert bundle_files(arg) == want, arg
        assert bundle_paths(arg) == want, arg
    (models / ENSEMBLE_FILE).write_text("{broken")
    assert bundle_files("ensemble") == []
