"""Corpus-adversarial training (`ser.adversary`): the reversed gradient, the hook on every
architecture's embedding, the refusals, and a real run on a pool of two written corpora."""

from __future__ import annotations

import math

import pytest
import torch

from ser.adversary import CorpusAdversary, classifier_layer, ramp, reverse_gradient
from ser.models import create_model, list_models
from ser.recipe import TrainConfig
from ser.training import fit


def test_gradient_reversal_flips_and_scales_only_the_gradient():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 4.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.25, -0.5, -1.0]))


def test_ramp_starts_at_zero_and_ends_at_the_weight():
    assert ramp(0.5, 0.0) == 0.0
    assert math.isclose(ramp(0.5, 1.0), 0.5, rel_tol=1e-3)
    assert 0 < ramp(0.5, 0.1) < ramp(0.5, 0.3) < 0.5
    assert ramp(0.5, 2.0) == ramp(0.5, 1.0)  # clamped


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_feeds_its_embedding_to_the_adversary(arch):
    import numpy as np

    model = create_model(arch)
    layer = classifier_layer(model, 6)
    adv = CorpusAdversary(model, 6, ["a", "b"], np.array([0, 1]), 1.0, 10)
    model.train()
    x = model.example_input(batch=4)
    logits = model(*x) if isinstance(x, tuple) else model(x)
    targets = torch.eye(2)[[0, 1, 0, 1]]
    loss = adv.loss(targets) + logits.sum() * 0
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert adv.net[0].weight.grad is not None and adv.net[0].in_features == layer.in_features
    adv.close()
    assert not layer._forward_pre_hooks


def test_adversary_options_are_refused_before_training(demo_root, tmp_path):
    pool = f"{demo_root},tess={tmp_path}"
    with pytest.raises(ValueError, match="pool with clips of at least two corpora"):
        TrainConfig(arch="lenet2d", adversary=0.5, data=str(demo_root)).check()
    with pytest.raises(ValueError, match="one left out"):
        TrainConfig(arch="lenet2d", adversary=0.5, data=pool, split="loco",
                    test_corpus="tess").check()
    with pytest.raises(ValueError, match="one process"):
        TrainConfig(arch="lenet2d", adversary=0.5, data=pool, nproc=2).check()
    with pytest.raises(ValueError, match=r"\(0, 2\]"):
        TrainConfig(arch="lenet2d", adversary=3, data=pool).check()
    assert "adversary" not in TrainConfig(arch="lenet2d").as_dict()  # older configs unchanged


def test_corpus_adversary_trains_on_a_pool_and_leaves_only_the_model(tess_pool):
    common = dict(arch="lenet2d", data=tess_pool, epochs=1, batch_size=32, seed=5,
                  noise=True, mixup=0.2, balance="corpus")
    plain = fit(TrainConfig(**common))
    res = fit(TrainConfig(adversary=1.0, **common))
    accs = [h["train_corpus_acc"] for h in res.history]
    assert len(accs) == 1 and 0 <= accs[0] <= 1
    assert all("train_corpus_acc" not in h for h in plain.history)
    # The reversed gradient changed what the model learnt (λ is 0 only at the first step).
    assert res.history[-1]["train_loss"] != plain.history[-1]["train_loss"]
    assert res.card.training.adversary == 1.0
    assert res.card.run["adversary"] == {"weight": 1.0, "corpus_accuracy_first_epoch": accs[0],
                                         "corpus_accuracy_last_epoch": accs[-1]}
    assert "adversary" not in plain.card.run
    # Only the model is kept: no hook, no adversary weights in what the bundle saves.
    assert all(not m._forward_pre_hooks for m in res.model.modules())
    assert set(res.model.state_dict()) == set(plain.model.state_dict())
    assert 0 <= res.report["uar"] <= 1
    from ser.zoo import ModelEntry, table

    row = table([ModelEntry(name="m", source="run", bundle=None, card=res.card),
                 ModelEntry(name="p", source="run", bundle=None, card=plain.card)])
    text = row["corpus adversary"][0]
    assert text.startswith("weight 1") and "first → last epoch" in text
    assert row["corpus adversary"].isna()[1]
