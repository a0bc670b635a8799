"""Corpus-adversarial training: an embedding that does not tell the corpora apart.

A model trained on a pool of corpora can learn which corpus a clip comes from (its
microphone, room, noise floor, language, the actors' style) and use that as a shortcut to
the emotion, because each corpus has its own balance of emotions and its own way of acting
them. On a corpus it never heard that shortcut points somewhere arbitrary.

With ``TrainConfig.adversary`` = w > 0, a small classifier (one hidden layer) reads the
embedding the model's last linear layer receives and learns to name the clip's training
corpus. Between the two sits a gradient reversal: the classifier's own weights learn to
name the corpus, while the model receives the *opposite* of that gradient, scaled by λ, so
it is pushed towards an embedding from which the corpus cannot be read (domain-adversarial
training of neural networks, Ganin & Lempitsky, 2015). λ rises from 0 to w over the run
(λ_p = w · (2 / (1 + e^(−10 p)) − 1), p = the fraction of steps done), so the emotion task
shapes the embedding first.

Only the model is saved: the corpus classifier is a training aid and never reaches the
bundle. Each epoch records the classifier's accuracy on the training batches
(``train_corpus_acc``). Near chance it only says that this one classifier is fooled, not
that the corpus is gone: in the runs measured so far it stayed near chance while a fresh
linear probe still named the corpus of 87-93 % of the clips
(``benchmarks/corpus_probe.py`` measures that).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Hidden units of the corpus classifier.
HIDDEN = 128


class _Reverse(torch.autograd.Function):
    """Identity forward; the gradient is multiplied by ``-scale`` on the way back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged; the gradient that flows back through it is ``-scale`` times its own."""
    return _Reverse.apply(x, float(scale))


def ramp(weight: float, progress: float) -> float:
    """λ after ``progress`` (0–1) of the run: 0 at the start, ``weight`` · 0.9999 at the end."""
    p = min(max(float(progress), 0.0), 1.0)
    return float(weight) * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


def classifier_layer(model: nn.Module, n_classes: int) -> nn.Linear:
    """The model's last ``nn.Linear`` with ``n_classes`` outputs: its input is the clip's
    embedding. ``ValueError`` when the model has none (it cannot be trained this way)."""
    layers = [m for m in model.modules()
              if isinstance(m, nn.Linear) and m.out_features == n_classes]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no final linear layer with {n_classes} "
                         "outputs, so corpus-adversarial training cannot read its embedding.")
    return layers[-1]


class CorpusAdversary(nn.Module):
    """The corpus classifier behind a gradient reversal, fed by a hook on the model.

    ``targets`` (training rows × corpora, one-hot float32) are drawn with the batches and
    mixed like the labels (`ser.training.BatchAugmenter.mixed`); `loss` is called once per
    step, after the model's forward pass.
    """

    def __init__(self, model: nn.Module, n_classes: int, corpora: list[str],
                 rows: np.ndarray, weight: float, total_steps: int):
        super().__init__()
        if len(corpora) < 2:
            raise ValueError("Corpus-adversarial training needs clips of at least two corpora "
                             f"in the training part; this run trains on {corpora or 'none'}. "
                             "Choose a pool of corpora (and, leaving one out, at least three).")
        layer = classifier_layer(model, n_classes)
        self.corpora = list(corpora)
        self.weight, self.total_steps = float(weight), max(int(total_steps), 1)
        self.net = nn.Sequential(nn.Linear(layer.in_features, HIDDEN), nn.ReLU(),
                                 nn.Linear(HIDDEN, len(corpora)))
        self.targets = torch.from_numpy(
            np.eye(len(corpora), dtype=np.float32)[np.asarray(rows, dtype=np.int64)])
        self._embedding: torch.Tensor | None = None
        self._handle = layer.register_forward_pre_hook(self._keep)
        self.steps = 0
        self.correct = 0.0
        self.seen = 0

    def _keep(self, module: nn.Module, args) -> None:
        # Only training forward passes feed the adversary; validation leaves nothing behind.
        self._embedding = args[0] if module.training and torch.is_grad_enabled() else None

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        """The corpus classifier's cross-entropy on the last forward pass's embeddings
        (soft ``targets``: mixed one-hot rows); its gradient reaches the model reversed."""
        if self._embedding is None:
            raise RuntimeError("The corpus adversary saw no training forward pass.")
        scale = ramp(self.weight, self.steps / self.total_steps)
        self.steps += 1
        logits = self.net(reverse_gradient(self._embedding, scale).float())
        self._embedding = None
        targets = targets.to(logits.device)
        with torch.no_grad():
            self.correct += float((logits.argmax(1) == targets.argmax(1)).sum())
            self.seen += len(targets)
        return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()

    def take_accuracy(self) -> float | None:
        """The classifier's accuracy on the training batches since the last call."""
        acc = self.correct / self.seen if self.seen else None
        self.correct, self.seen = 0.0, 0
        return acc

    def close(self) -> None:
        """Remove the hook: the trained model goes on without the adversary."""
        self._handle.remove()
        self._embedding = None


def corpus_adversary(cfg, data, model: nn.Module, device: torch.device
                     ) -> CorpusAdversary | None:
    """The run's corpus adversary (None unless ``cfg.adversary`` > 0), on ``device``: one
    output per corpus in the training part, a target per training row (augmented copies
    included, in the order `ser.dataset.prepare` stacks them)."""
    if not cfg.adversary:
        return None
    from ser.splits import corpus_ids

    sel = data.selection
    names = corpus_ids(sel.manifest)[np.asarray(sel.split.train, dtype=int)]
    corpora = sorted(set(names))
    index = {c: i for i, c in enumerate(corpora)}
    rows = np.array([index[c] for c in names], dtype=np.int64)
    n_rows = len(data.labels["train"])
    if len(rows) and n_rows % len(rows):
        raise ValueError(f"{n_rows} training rows are not whole copies of the "
                         f"{len(rows)} training clips.")
    rows = np.tile(rows, n_rows // max(len(rows), 1))
    n_classes = int(getattr(model, "hparams", {}).get("n_classes", 6))
    steps_per_epoch = math.ceil(n_rows / cfg.batch_size)
    return CorpusAdversary(model, n_classes, corpora, rows, cfg.adversary,
                           cfg.resolved_epochs() * steps_per_epoch).to(device)
