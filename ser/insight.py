"""Views inside a trained model: where it listens, what each layer computes, what a unit sees.

Everything starts from a `ser.inference.Predictor`, so a clip reaches the network exactly
as it does for prediction: the bundle's feature config, its windows, its voice statistics
(speaker-normalised models) and its normalisation (`Predictor.window_features`,
`Predictor.inputs`). An `Inspector` works on its own copy of the network (eval mode,
activations made out-of-place, parameters frozen), so hooks never touch the model that
scores clips, gradients never reach the bundle's parameters, and two sessions sharing one
inspector wait for each other instead of mixing hooks.

Methods
-------
- **Where a 2D model listens**: Grad-CAM (Selvaraju et al., 2017). The gradient of the
  chosen class's logit with respect to a convolutional layer's output, averaged over the
  map, weights that layer's channels; the positive part of the weighted sum is a coarse map,
  placed on the spectrogram at the centres of its cells' receptive fields and interpolated
  to the 128 × frames grid. A convolution is read after its activation (rectified
  features, as in the paper). By default the last convolutional unit that still has a
  frequency axis (the last conv layer or residual block). Layers after the mel axis is
  folded away (ser2d's 1D blocks) give a map over time only.
- **Which FS1 values a 1D model reads**: integrated gradients (Sundararajan et al., 2017)
  from the training mean (the zero vector after the bundle's normalisation) to the clip,
  per value, summed per family (ZCR, RMS, MFCC, chroma, contrast, mel). The attributions
  add up to the logit's change from the training mean to the clip (``delta``), up to the
  error of the Riemann sum.
- **Feature maps**: a layer's output for the clip; the ``k`` channels of largest mean
  squared activation.
- **Receptive field of a unit**: the input cells that can change that unit, computed by
  back-propagating from the unit through a *probe* copy of the network in which every
  convolution averages its window, pooling averages, and activations and normalisation
  layers are the identity. The gradient of such a network is positive exactly where the
  real network's connectivity reaches, so its support is the receptive field (clipped to
  the input). The same unit's gradient through the real network on the clip shows which
  of those cells mattered this time (the *effective* field).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ser import config
from ser.devices import inference_threads

#: Method names, as the pages and the README state them.
CAM_METHOD = "Grad-CAM"
FS1_METHOD = "integrated gradients from the training mean"
#: Riemann steps of integrated gradients (midpoints); enough for a sum within a few % of
#: the logit change on the shipped 1D models.
IG_STEPS = 64

_POOLS = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
_POINTWISE = (nn.ReLU, nn.SiLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.GELU,
              nn.Dropout)


class InsightError(ValueError):
    """The view cannot be computed for this model or layer; the message says why."""


@dataclass(frozen=True)
class Layer:
    """One inspectable layer: a convolution, a pooling layer or a residual block."""

    name: str  # qualified module name
    type: str  # class name
    kind: str  # "conv" | "pool" | "block"
    shape: tuple[int, ...]  # output without batch: (C, bands, frames) or (C, length)
    space: str  # the input it reads: "fs1" or "fs2"
    order: int  # position in execution order (0 = first)

    @property
    def label(self) -> str:
        dims = " × ".join(map(str, self.shape))
        return f"{self.name} ({self.type}, {dims})"


@dataclass
class ClipView:
    """One window of a clip as one model sees it."""

    model: str
    arrays: dict[str, np.ndarray]  # the window's features before normalisation
    inputs: list[torch.Tensor]  # normalised, batch of 1, the model's argument order
    spectrogram: np.ndarray | None  # (n_mels, frames) dB re max, for drawing
    start_s: float
    seconds_per_frame: float
    probs: np.ndarray  # the model's (uncalibrated) probabilities for this window

    @property
    def label(self) -> str:
        return config.LABELS[int(np.argmax(self.probs))]


@dataclass
class GradCAM:
    """Grad-CAM of one layer for one class, aligned to the spectrogram."""

    cam: np.ndarray  # (n_mels, frames), in [0, 1] (divided by its maximum)
    raw: np.ndarray  # the layer-resolution map before placing and scaling
    layer: str
    target: str  # the class explained
    peak: float  # the maximum of the raw map (0: nothing positive)
    time_only: bool = False  # the layer has no frequency axis: the map repeats per band


@dataclass
class FS1Attribution:
    """Integrated gradients over the FS1 values, per value and per family."""

    values: np.ndarray  # (fs1_dim,) attribution of each value, in logit units
    families: dict[str, float]  # family → sum of its values' attributions
    shares: dict[str, float]  # family → share of the total absolute attribution
    spans: dict[str, tuple[int, int]]  # family → [start, stop) in the vector
    target: str
    delta: float  # logit(clip) − logit(training mean): what the values should add up to


@dataclass
class Attribution:
    """Where one model listens on one clip: Grad-CAM and/or the FS1 attribution."""

    model: str
    target: str
    probs: np.ndarray
    cam: GradCAM | None = None
    fs1: FS1Attribution | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class FeatureMaps:
    """The strongest channels of a layer's output for one clip."""

    layer: Layer
    maps: np.ndarray  # (k, bands, frames) or (k, length)
    channels: list[int]
    energy: list[float]  # mean squared activation of each shown channel
    centres: tuple[np.ndarray | None, np.ndarray]  # input position of each (row, column)


@dataclass
class ReceptiveField:
    """The input region one unit can see, and how much each cell mattered on this clip."""

    layer: Layer
    unit: tuple[int, ...]  # (channel, row, column) or (channel, position)
    rows: tuple[int, int]  # first and last mel band (FS1: 0, 0)
    cols: tuple[int, int]  # first and last frame (FS1: first and last value)
    mask: np.ndarray  # bool, input-shaped: the cells that can change the unit
    effective: np.ndarray  # |d unit / d input| on the real network, divided by its max
    space: str

    @property
    def size(self) -> tuple[int, int]:
        """(bands, frames) of the rectangle (FS1: (1, values))."""
        return self.rows[1] - self.rows[0] + 1, self.cols[1] - self.cols[0] + 1


class _StopForwardError(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


def fs1_spans(cfg) -> dict[str, tuple[int, int]]:
    """FS1 family → [start, stop) for a feature config (169 values with the seeds')."""
    sizes = [("ZCR", 1), ("RMS", 1), ("MFCC", cfg.n_mfcc), ("chroma", config.N_CHROMA),
             ("contrast", config.CONTRAST_ROWS), ("mel", cfg.n_mels)]
    out, start = {}, 0
    for name, n in sizes:
        out[name] = (start, start + n)
        start += n
    return out


def _private_copy(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy whose activations do not overwrite their input (a hook's
    saved output must stay the layer's output)."""
    own = copy.deepcopy(model).float().eval()
    for m in own.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    for p in own.parameters():
        p.requires_grad_(False)
    return own


def _probe_copy(model: nn.Module) -> nn.Module:
    """The connectivity probe (see the module docstring), in float64."""
    probe = copy.deepcopy(model).double().eval()
    for name, m in list(probe.named_modules()):
        if not name:
            continue
        replacement = None
        if isinstance(m, _NORMS) or isinstance(m, _POINTWISE):
            replacement = nn.Identity()
        elif isinstance(m, nn.modules.pooling._MaxPoolNd) and m.dilation in (1, (1,), (1, 1)):
            cls = nn.AvgPool1d if isinstance(m, nn.MaxPool1d) else nn.AvgPool2d
            replacement = cls(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
        if replacement is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(probe.get_submodule(parent_name) if parent_name else probe, child,
                    replacement)
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                m.weight.fill_(1.0 / (m.weight[0].numel()))
            elif isinstance(m, nn.Linear):
                m.weight.fill_(1.0 / m.in_features)
            elif isinstance(m, nn.RNNBase):
                for p in m.parameters():
                    p.fill_(0.01)
                continue
            else:
                continue
            if m.bias is not None:
                m.bias.zero_()
    for p in probe.parameters():
        p.requires_grad_(False)
    return probe


def _geometry(modules: list[nn.Module], n_axes: int) -> list[tuple[float, float, float]]:
    """Per axis ``(centre of the first unit, jump, receptive field)`` in input cells after
    a chain of convolutions and pools (padding included)."""
    state = [(0.0, 1.0, 1.0)] * n_axes
    for m in modules:
        k = _per_axis(m.kernel_size, n_axes)
        s = _per_axis(m.stride if m.stride is not None else m.kernel_size, n_axes)
        p = _per_axis(getattr(m, "padding", 0), n_axes)
        d = _per_axis(getattr(m, "dilation", 1), n_axes)
        for a in range(n_axes):
            start, jump, rf = state[a]
            state[a] = (start + ((k[a] - 1) * d[a] / 2 - p[a]) * jump, jump * s[a],
                        rf + (k[a] - 1) * d[a] * jump)
    return state


def _per_axis(value, n: int) -> tuple:
    if isinstance(value, str):  # padding="same"/"valid" is not used by SER Studio's models
        raise InsightError(f"padding {value!r} is not supported")
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return value * n if len(value) == 1 else value[-n:]


class Inspector:
    """Views inside one loaded model (`ser.inference.Predictor`)."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.name = predictor.name
        self.space = predictor.space
        self.cfg = predictor.cfg
        self.model = _private_copy(predictor.model).cpu()
        self._probe: nn.Module | None = None
        self._lock = threading.Lock()
        self._names = {m: n for n, m in self.model.named_modules()}
        self.layers, self._chains = self._trace()

    # ------------------------------------------------------------------ structure
    def _trace(self) -> tuple[list[Layer], dict[str, list[nn.Module]]]:
        """Layers in execution order, and for each the convolutions and pools on its main
        path from the input (residual shortcuts left out), from one forward pass."""
        calls: list[tuple[nn.Module, torch.Tensor]] = []

        def hook(module, _inputs, output):
            if isinstance(output, torch.Tensor):
                calls.append((module, output))

        handles = [m.register_forward_hook(hook) for m in self.model.modules()
                   if m is not self.model]
        try:
            with torch.no_grad(), inference_threads(torch.device("cpu")):
                example = self.model.example_input(batch=1, frames=self.cfg.fs2_frames)
                self.model(*example) if isinstance(example, tuple) else self.model(example)
        finally:
            for h in handles:
                h.remove()
        self._order = [self._names[m] for m, _ in calls]
        layers: list[Layer] = []
        chains: dict[str, list[nn.Module]] = {}
        chain = {"fs1": [], "fs2": []}
        for module, out in calls:
            name = self._names[module]
            parts = name.split(".")
            space = self._space_of(name, out)
            if "shortcut" in parts:
                continue
            if any("attenti" in type(self.model.get_submodule(".".join(parts[:i]))
                                     ).__name__.lower() for i in range(1, len(parts))):
                continue  # the attention pooling's scorer is not on the signal's path
            if isinstance(module, (nn.modules.conv._ConvNd, *_POOLS)):
                chain[space].append(module)
            kind = ("conv" if isinstance(module, nn.modules.conv._ConvNd) else
                    "pool" if isinstance(module, _POOLS) else
                    "block" if "block" in type(module).__name__.lower() else None)
            if kind is None or out.dim() not in (3, 4):
                continue
            if any(layer.name == name for layer in layers):  # a module called twice
                continue
            layers.append(Layer(name, type(module).__name__, kind, tuple(out.shape[1:]),
                                space, len(layers)))
            chains[name] = list(chain[space])
        return layers, chains

    def _space_of(self, name: str, out: torch.Tensor) -> str:
        if self.space != "fs1+fs2":
            return self.space
        return "fs1" if name.split(".")[0] == "path1d" else "fs2"

    def rectified(self, name: str) -> str:
        """The module whose output Grad-CAM reads for layer ``name``: a convolution's
        activation (after its normalisation, if any), so the map weighs rectified
        features as Grad-CAM intends; a block's or pool's own output otherwise."""
        if self.layer(name).kind != "conv" or name not in self._order:
            return name
        for after in self._order[self._order.index(name) + 1:]:
            module = self.model.get_submodule(after)
            if isinstance(module, _NORMS):
                continue
            if isinstance(module, _POINTWISE) and not isinstance(module, nn.Dropout):
                return after
            break
        return name

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise InsightError(f"{self.name} has no inspectable layer {name!r}; it has "
                           f"{', '.join(x.name for x in self.layers) or 'none'}.")

    @property
    def cam_layers(self) -> list[Layer]:
        """Layers Grad-CAM can use: convolutional units on the spectrogram's path."""
        return [x for x in self.layers if x.space == "fs2" and x.kind in ("conv", "block")]

    @property
    def default_cam_layer(self) -> Layer | None:
        """The last convolutional unit that still has a frequency axis (else the last one)."""
        cams = self.cam_layers
        with_freq = [x for x in cams if len(x.shape) == 3]
        return (with_freq or cams or [None])[-1]

    @property
    def can_cam(self) -> bool:
        return self.default_cam_layer is not None

    @property
    def can_fs1(self) -> bool:
        return "fs1" in self.space

    # ------------------------------------------------------------------ forward passes
    def _run(self, inputs: list[torch.Tensor], layer: str | None, *, model=None,
             stop: bool = False) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(layer output, logits)``; logits is None when ``stop`` ends the pass early."""
        model = model if model is not None else self.model
        seen: dict[str, torch.Tensor] = {}
        handle = None
        if layer is not None:
            def hook(_m, _i, output):
                seen["out"] = output
                if stop:
                    raise _StopForwardError

            handle = model.get_submodule(layer).register_forward_hook(hook)
        try:
            logits = model(*inputs)
        except _StopForwardError:
            logits = None
        finally:
            if handle is not None:
                handle.remove()
        return seen.get("out"), logits

    def view(self, y: np.ndarray, sr: int, *, window: int = 0, voice=None) -> ClipView:
        """The clip's ``window``-th model window as this model sees it (first by default;
        a clip up to 5 s is one window). ``voice`` normalises a speaker-normalised model's
        input and adapts any other model's answer (`Predictor.voice_offset`), as the verdict
        does. Raises `ser.inference.VoiceNeededError` for a speaker-normalised model without
        a usable voice profile."""
        from ser.features import fs2

        p = self.predictor
        arrays, starts = p.window_features(y, sr)
        window = int(min(max(window, 0), len(starts) - 1))
        one = {s: a[window:window + 1] for s, a in arrays.items()}
        inputs = [x.detach().cpu().float() for x in p.inputs(one, voice=voice)]
        spec = None
        if "fs2" in one:
            spec = one["fs2"][0]
            if self.cfg.fs2_norm == "utterance":  # draw the dB image, not the normalised one
                chunks, _ = p.windows(np.asarray(y, np.float32) if sr == self.cfg.sample_rate
                                      else _resampled(y, sr, self.cfg.sample_rate))
                spec = fs2(chunks[window], cfg=self.cfg.extraction())
        net = p.net(voice)  # BatchNorm moved towards the voice, as for the verdict
        net = self.model if net is p.model else _private_copy(net).cpu()
        with self._lock, torch.no_grad(), inference_threads(torch.device("cpu")):
            probs = torch.softmax(net(*inputs).float(), dim=1)[0].numpy()
        probs = p.adapt_probs(probs[None], voice)[0]  # the verdict's answer for this voice
        return ClipView(self.name, {s: a[0] for s, a in one.items()}, inputs, spec,
                        float(starts[window]), self.cfg.hop_length / self.cfg.sample_rate,
                        probs)

    def _target(self, view: ClipView, target: str | int | None) -> int:
        if target is None:
            return int(np.argmax(view.probs))
        if isinstance(target, str):
            if target not in config.LABELS:
                raise InsightError(f"unknown emotion {target!r}")
            return config.LABELS.index(target)
        return int(target)

    # ------------------------------------------------------------------ where it listens
    def gradcam(self, view: ClipView, layer: str | None = None,
                target: str | int | None = None) -> GradCAM:
        """Grad-CAM of ``layer`` (default `default_cam_layer`) for class ``target``
        (default: the predicted one), aligned to the window's spectrogram."""
        chosen = self.layer(layer) if layer else self.default_cam_layer
        if chosen is None or chosen.space != "fs2":
            raise InsightError(f"{self.name} has no convolutional layer on the spectrogram, "
                               "so Grad-CAM cannot show where it listens.")
        cls = self._target(view, target)
        with self._lock, torch.enable_grad(), inference_threads(torch.device("cpu")):
            inputs = [x.clone().requires_grad_(True) for x in view.inputs]
            act, logits = self._run(inputs, self.rectified(chosen.name))
            if act is None or logits is None:
                raise InsightError(f"layer {chosen.name} did not run for this input")
            grad, = torch.autograd.grad(logits[0, cls], act)
        a, g = act[0].detach().double(), grad[0].double()
        axes = tuple(range(1, a.dim()))
        weights = g.mean(dim=axes)
        raw = torch.relu((weights.view(-1, *([1] * (a.dim() - 1))) * a).sum(0)).numpy()
        raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        n_mels, frames = view.inputs[-1].shape[-2:]
        rows, cols = self.centres(chosen)
        cam = _place(raw, rows, cols, n_mels, frames)
        peak = float(raw.max()) if raw.size else 0.0
        cam = cam / cam.max() if cam.max() > 0 else np.zeros_like(cam)
        return GradCAM(cam.astype(np.float32), raw.astype(np.float32), chosen.name,
                       config.LABELS[cls], peak, time_only=raw.ndim == 1)

    def centres(self, layer: Layer) -> tuple[np.ndarray | None, np.ndarray]:
        """Input position (mel band, frame; or FS1 index) of the centre of each cell of
        ``layer``'s map along (rows, columns); rows is None when the map has no frequency
        axis (every band feeds every cell)."""
        chain = self._chains[layer.name]
        if layer.space == "fs1":
            (start, jump, _), = _geometry(chain, 1)
            return None, start + jump * np.arange(layer.shape[-1])
        two = [m for m in chain if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
        one = [m for m in chain if m not in two]
        (f0, fj, _), (t0, tj, _) = _geometry(two, 2)
        if len(layer.shape) == 3:
            return f0 + fj * np.arange(layer.shape[1]), t0 + tj * np.arange(layer.shape[2])
        # after the bands are folded into channels: time continues through the 1D layers
        start, jump = t0, tj
        for m in one:
            (s, j, _), = _geometry([m], 1)
            start, jump = start + s * jump, jump * j
        return None, start + jump * np.arange(layer.shape[-1])

    def fs1_attribution(self, view: ClipView, target: str | int | None = None,
                        steps: int = IG_STEPS) -> FS1Attribution:
        """Integrated gradients over the FS1 values (see the module docstring)."""
        if not self.can_fs1:
            raise InsightError(f"{self.name} does not read the FS1 values.")
        cls = self._target(view, target)
        x = view.inputs[0]  # FS1 comes first for two-input models
        others = view.inputs[1:]
        alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
        with self._lock, torch.enable_grad(), inference_threads(torch.device("cpu")):
            path = (alphas.view(-1, 1, 1) * x).requires_grad_(True)
            rest = [o.expand(steps, *o.shape[1:]) for o in others]
            logits = self.model(path, *rest)
            grad, = torch.autograd.grad(logits[:, cls].sum(), path)
            with torch.no_grad():
                ends = self.model(torch.cat([torch.zeros_like(x), x]),
                                  *[o.expand(2, *o.shape[1:]) for o in others])
        values = (x[0, 0] * grad.mean(0)[0]).double().numpy()
        values = np.nan_to_num(values)
        spans = fs1_spans(self.cfg)
        total = float(np.abs(values).sum()) or 1.0
        families = {k: float(values[a:b].sum()) for k, (a, b) in spans.items()}
        shares = {k: float(np.abs(values[a:b]).sum() / total) for k, (a, b) in spans.items()}
        delta = float(ends[1, cls] - ends[0, cls])
        return FS1Attribution(values.astype(np.float32), families, shares, spans,
                              config.LABELS[cls], delta)

    def attribute(self, view: ClipView, *, layer: str | None = None,
                  target: str | int | None = None) -> Attribution:
        """Every attribution this model supports for the clip: Grad-CAM for a model that
        reads the spectrogram, integrated gradients for one that reads FS1 (both for the
        combined model). `InsightError` when neither applies."""
        if self.space == "voice":
            raise InsightError(f"{self.name} reads a pretrained voice encoder's statistics "
                               "of the whole clip (averages over time), so there is no map "
                               "over time or frequency to show.")
        cls = self._target(view, target)
        out = Attribution(self.name, config.LABELS[cls], view.probs)
        if self.can_cam:
            out.cam = self.gradcam(view, layer, cls)
        elif "fs2" in self.space:
            out.notes.append(f"{self.name} has no convolutional layer on the spectrogram.")
        if self.can_fs1:
            out.fs1 = self.fs1_attribution(view, cls)
        if out.cam is None and out.fs1 is None:
            raise InsightError(f"{self.name}: this architecture cannot be attributed "
                               "(no convolutional layer on the spectrogram and no FS1 input).")
        return out

    # ------------------------------------------------------------------ what layers compute
    def feature_maps(self, view: ClipView, layer: str, k: int = 8) -> FeatureMaps:
        """The ``k`` channels of ``layer``'s output with the largest mean squared activation."""
        chosen = self.layer(layer)
        with self._lock, torch.no_grad(), inference_threads(torch.device("cpu")):
            act, _ = self._run(view.inputs, chosen.name, stop=True)
        if act is None:
            raise InsightError(f"layer {chosen.name} did not run for this input")
        a = act[0].float().numpy()
        energy = (a.reshape(a.shape[0], -1) ** 2).mean(axis=1)
        order = [int(i) for i in np.argsort(-energy, kind="stable")[:max(1, k)]]
        return FeatureMaps(chosen, a[order], order, [float(energy[i]) for i in order],
                           self.centres(chosen))

    def strongest_unit(self, view: ClipView, layer: str) -> tuple[int, ...]:
        """(channel, position...) of the largest activation in the strongest channel."""
        fm = self.feature_maps(view, layer, k=1)
        pos = np.unravel_index(int(np.argmax(fm.maps[0])), fm.maps[0].shape)
        return (fm.channels[0], *map(int, pos))

    def receptive_field(self, view: ClipView, layer: str,
                        unit: tuple[int, ...] | None = None) -> ReceptiveField:
        """The receptive field of ``unit`` = (channel, row, column) of a 2D map, or
        (channel, position) of a 1D one, in ``layer`` (default: `strongest_unit`)."""
        chosen = self.layer(layer)
        unit = tuple(int(u) for u in (unit or self.strongest_unit(view, layer)))
        if len(unit) != len(chosen.shape) or any(
                not 0 <= u < n for u, n in zip(unit, chosen.shape)):
            raise InsightError(f"unit {unit} is outside {chosen.name}'s output "
                               f"{chosen.shape}")
        index = self.space.split("+").index(chosen.space) if "+" in self.space else 0
        with self._lock, torch.enable_grad(), inference_threads(torch.device("cpu")):
            if self._probe is None:
                self._probe = _probe_copy(self.model)
            ones = [torch.ones_like(x, dtype=torch.float64).requires_grad_(True)
                    for x in view.inputs]
            act, _ = self._run(ones, chosen.name, model=self._probe, stop=True)
            g_probe, = torch.autograd.grad(act[(0, *unit)], ones[index])
            real = [x.clone().requires_grad_(True) for x in view.inputs]
            act, _ = self._run(real, chosen.name, stop=True)
            g_real, = torch.autograd.grad(act[(0, *unit)], real[index])
        mask = (g_probe[0, 0] > 0).numpy()
        eff = np.nan_to_num(np.abs(g_real[0, 0].double().numpy()))
        eff = eff / eff.max() if eff.max() > 0 else eff
        if mask.ndim == 1:
            mask, eff = mask[None, :], eff[None, :]
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows):
            raise InsightError(f"no input cell reaches unit {unit} of {chosen.name}")
        return ReceptiveField(chosen, unit, (int(rows[0]), int(rows[-1])),
                              (int(cols[0]), int(cols[-1])), mask, eff.astype(np.float32),
                              chosen.space)


def _resampled(y: np.ndarray, sr: int, rate: int) -> np.ndarray:
    from ser.audio import resample

    return resample(np.asarray(y, dtype=np.float32), sr, rate)


def _place(raw: np.ndarray, rows: np.ndarray | None, cols: np.ndarray, n_mels: int,
           frames: int) -> np.ndarray:
    """A layer-resolution map interpolated onto the (n_mels × frames) input grid, each
    cell at the centre of its receptive field (beyond the outermost centres: the edge value)."""
    t = np.arange(frames)
    if raw.ndim == 1 or rows is None:
        line = raw if raw.ndim == 1 else raw.mean(axis=0)
        return np.tile(np.interp(t, cols, line), (n_mels, 1))
    across_time = np.stack([np.interp(t, cols, r) for r in raw])  # (rows, frames)
    f = np.arange(n_mels)
    return np.stack([np.interp(f, rows, across_time[:, j]) for j in range(frames)], axis=1)
