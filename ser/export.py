"""Models that leave Python: a bundle exported to ONNX, with or without its front end.

Two graphs can be written for a bundle (``python -m ser export NAME --onnx``):

``NAME.onnx``
    The network and a softmax: standardised features in (``fs2``: ``(batch, 1, n_mels,
    frames)``, ``fs1``: ``(batch, 1, 169)``), probabilities out (label order of the card).
    Batch is dynamic; so is the time axis for architectures that take any number of frames
    (``variable_length``), otherwise it is the card's ``fs2_frames``.
``NAME.waveform.onnx`` (log-mel models)
    The whole chain of `ser.inference.Predictor` for one window: mono samples at the
    card's sample rate (22 050 Hz) in, ``(batch, samples)``, probabilities out. The front
    end is written in torch operations (`LogMelFrontEnd`): centred Hann STFT, power, the
    card's Slaney mel filterbank, dB relative to the clip's maximum with the top-dB floor,
    padding or cropping to the model's frames with that floor, the card's normalisation.
    A clip longer than one window (``fs2_frames · hop`` samples) is scored window by window
    by the caller (as the Predictor does, half-overlapping, averaging probabilities).

Beside each graph sits its card (``.json``): the bundle's card plus an ``onnx`` section
naming inputs, outputs, labels and the sample rate. onnxruntime and onnx are optional
dependencies (``pip install onnxruntime onnx``): nothing else in SER Studio imports them.

The exporter is torch's TorchScript-based one (``dynamo=False``): the torch.export-based
default needs the extra ``onnxscript`` package and brings nothing these models need.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ser import config
from ser.bundle import Bundle
from ser.features import FLOOR_OVERSUBTRACT, FLOOR_PERCENTILE, FeatureConfig, lowpass_bands

#: The opset written (the ONNX STFT operator needs 17).
OPSET = 17
INSTALL_HINT = "pip install onnxruntime onnx"


class ExportError(ValueError):
    """The model cannot be exported as asked; the message says why."""


def require(module: str):
    """Import ``onnx`` or ``onnxruntime``, or say how to install them (they are optional)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{module} is not installed; it is an optional dependency of SER "
                          f"Studio for ONNX export and inference: {INSTALL_HINT}") from None


# ------------------------------------------------------------------------ graphs

class Probabilities(nn.Module):
    """The bundle's network followed by a softmax (the exported feature graph)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(*inputs), dim=1)


class LogMelFrontEnd(nn.Module):
    """FS2 (`ser.features.fs2`) of one window in torch operations, then the normalisation.

    ``(batch, samples)`` float32 at ``cfg.sample_rate`` → ``(batch, 1, n_mels, frames)``
    standardised with ``mean``/``std`` per mel band. Equal to librosa's features (the
    test checks it) up to float32 rounding in the STFT.
    """

    def __init__(self, cfg: FeatureConfig, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        import librosa

        if cfg.fs2_norm not in ("none", "denoise", "lowpass"):
            raise ExportError(f"The front end of models trained with fs2_norm={cfg.fs2_norm!r} "
                              "is not exported yet; export the feature graph (--onnx) alone.")
        self.denoise = cfg.fs2_norm == "denoise"
        self.keep = (lowpass_bands(cfg.sample_rate, cfg.n_mels) if cfg.fs2_norm == "lowpass"
                     else None)
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        self.frames, self.top_db = cfg.fs2_frames, float(cfg.top_db)
        mel = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels)
        self.register_buffer("mel", torch.from_numpy(np.asarray(mel, np.float32)))
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True))
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32)[:, None])
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32)[:, None])

        self.dft = (FourStepDFT(cfg.n_fft) if FourStepDFT.fits(cfg.n_fft)
                    and cfg.n_fft % cfg.hop_length == 0 else None)

    def power(self, y: torch.Tensor) -> torch.Tensor:
        """``|STFT|²`` of the centred signal, ``(batch, 1 + n_fft/2, frames)``."""
        pad = self.n_fft // 2
        y = nn.functional.pad(y.unsqueeze(1), (pad, pad)).squeeze(1)  # centred, zeros
        if self.dft is not None:
            return self.dft(self.framed(y) * self.window).transpose(1, 2)
        if torch.onnx.is_in_onnx_export():  # ONNX's STFT gives (re, im) pairs
            spec = torch.stft(y, self.n_fft, self.hop, window=self.window, center=False,
                              return_complex=False)  # (batch, bins, frames, 2)
        else:
            spec = torch.view_as_real(torch.stft(y, self.n_fft, self.hop, window=self.window,
                                                 center=False, return_complex=True))
        return spec.pow(2).sum(-1)

    def framed(self, y: torch.Tensor) -> torch.Tensor:
        """``(batch, 1 + (len - n_fft)//hop, n_fft)`` frames of the padded ``y``, cut as
        ``n_fft/hop`` shifted runs of hop-long blocks (``unfold`` of a dynamic length does
        not export)."""
        r = self.n_fft // self.hop
        n_blocks = y.shape[-1] // self.hop
        blocks = y[:, :n_blocks * self.hop].reshape(y.shape[0], n_blocks, self.hop)
        runs = [blocks[:, i:blocks.shape[1] - (r - 1 - i)] for i in range(r)]
        return torch.cat(runs, dim=-1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.mel, self.power(y))  # (batch, n_mels, frames)
        peak = mel.amax(dim=(1, 2), keepdim=True)
        db = 10.0 * torch.log10(mel.clamp(min=1e-10)) - 10.0 * torch.log10(
            peak.clamp(min=1e-10))
        db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - self.top_db)
        db = torch.where(peak <= 1e-10, torch.full_like(db, -self.top_db), db)  # silence
        fill = torch.full_like(db[..., :1], -self.top_db).expand(-1, -1, self.frames)
        db = torch.cat([db, fill], dim=-1)[..., :self.frames]  # pad with silence, or crop
        if self.denoise:
            db = self.floor_subtract(db)
        if self.keep is not None:
            db = self.lowpass(db)
        return ((db - self.mean) / self.std).unsqueeze(1)

    def lowpass(self, db: torch.Tensor) -> torch.Tensor:
        """`ser.features.lowpass` in torch operations."""
        floor = -self.top_db
        low = db[:, :self.keep]
        peak = low.amax(dim=(1, 2), keepdim=True)
        shift = torch.where(peak > floor + 1e-3, peak, torch.zeros_like(peak))
        low = torch.where(low > floor, (low - shift).clamp(min=floor),
                          torch.full_like(low, floor))
        high = torch.full_like(db[:, self.keep:], floor)
        return torch.cat([low, high], dim=1)

    def floor_subtract(self, db: torch.Tensor) -> torch.Tensor:
        """`ser.features.floor_subtract` in torch operations (a sort and a gather stand
        for the percentile, with numpy's linear interpolation)."""
        floor = -self.top_db
        real = db.amax(dim=1, keepdim=True) > floor + 1e-3  # (batch, 1, frames)
        p = torch.pow(10.0, db / 10.0)
        ordered = torch.sort(torch.where(real, p, torch.full_like(p, float("inf"))),
                             dim=-1).values  # the real frames first, in order
        n = real.sum(dim=-1, keepdim=True).to(p.dtype)  # (batch, 1, 1)
        pos = (FLOOR_PERCENTILE / 100.0) * (n - 1).clamp(min=0)
        lo = pos.floor()
        frac = pos - lo
        index = lo.long().expand(-1, p.shape[1], 1)
        below = torch.gather(ordered, -1, index)
        above = torch.gather(ordered, -1, (index + (frac > 0).long()))
        noise = torch.where(n > 0, below + frac * (above - below), torch.zeros_like(below))
        left = (p - FLOOR_OVERSUBTRACT * noise).clamp(min=0.0) * real
        peak = left.amax(dim=(1, 2), keepdim=True)
        out = 10.0 * torch.log10(left.clamp(min=1e-30) / peak.clamp(min=1e-30))
        return torch.where(peak > 0, out.clamp(min=floor), torch.full_like(out, floor))


class FourStepDFT(nn.Module):
    """Power spectrum ``|rfft(x)|²`` of frames ``(..., N)`` by the four-step (Cooley-Tukey)
    factorisation N = N1·N2 written as three small matrix products and a twiddle: about an
    eighth of the multiply-adds of a plain DFT matrix for N = 2048, in operations every ONNX
    runtime runs fast (onnxruntime's STFT operator takes ~9 ms for a 3-s clip, this ~1 ms).

    With n = n1 + N1·n2 and k = k2 + N2·k1: a length-N2 DFT over n2 for every n1, the
    twiddle exp(-2πi·n1·k2/N), a length-N1 DFT over n1 (only the k1 that reach bin N/2).
    """

    def __init__(self, n: int):
        super().__init__()
        n1 = 1 << (int(np.log2(n)) // 2)
        n2 = n // n1
        self.n, self.n1, self.n2 = n, n1, n2
        self.k1 = n // 2 // n2 + 1  # k1 = 0 … covering bins 0 … N/2
        a = 2 * np.pi * np.outer(np.arange(n2), np.arange(n2)) / n2  # (n2, k2)
        first = np.concatenate([np.cos(a), -np.sin(a)], axis=1)  # x @ → [re | im]
        t = 2 * np.pi * np.outer(np.arange(n1), np.arange(n2)) / n  # (n1, k2)
        b = 2 * np.pi * np.outer(np.arange(n1), np.arange(self.k1)) / n1  # (n1, k1)
        c, s = np.cos(b), np.sin(b)
        last = np.block([[c, -s], [s, c]])  # [re | im] @ → [re | im]
        for name, m in (("first", first), ("tw_cos", np.cos(t)), ("tw_sin", np.sin(t)),
                        ("last", last)):
            self.register_buffer(name, torch.from_numpy(m.astype(np.float32)))

    @staticmethod
    def fits(n: int) -> bool:
        return n >= 16 and n & (n - 1) == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(*lead, self.n2, self.n1).transpose(-1, -2)  # (..., n1, n2)
        a = torch.matmul(x, self.first)  # (..., n1, 2·k2)
        re, im = a[..., :self.n2], a[..., self.n2:]
        re, im = (re * self.tw_cos + im * self.tw_sin, im * self.tw_cos - re * self.tw_sin)
        z = torch.cat([re, im], dim=-2).transpose(-1, -2)  # (..., k2, 2·n1)
        out = torch.matmul(z, self.last)  # (..., k2, 2·k1)
        power = out[..., :self.k1].pow(2) + out[..., self.k1:].pow(2)  # (..., k2, k1)
        power = power.transpose(-1, -2).reshape(*lead, self.k1 * self.n2)
        return power[..., :self.n // 2 + 1]


class WaveformGraph(nn.Module):
    """Samples → probabilities: `LogMelFrontEnd` then the network and a softmax."""

    def __init__(self, bundle: Bundle):
        super().__init__()
        if bundle.input_space != "fs2":
            raise ExportError(f"{bundle.name} reads {bundle.input_space!r} features; only "
                              "log-mel (fs2) models can be exported with their front end. "
                              "Export its feature graph (--onnx) instead.")
        if bundle.card.speaker_normalised:
            raise ExportError(f"{bundle.name} is speaker-normalised: it needs the speaker's "
                              "voice statistics, which a waveform graph cannot hold.")
        stats = bundle.normalisation["fs2"]
        self.front = LogMelFrontEnd(bundle.card.features, stats["mean"], stats["std"])
        self.net = Probabilities(bundle.model)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(self.front(y))


# ------------------------------------------------------------------------ export

def feature_inputs(bundle: Bundle, batch: int = 2) -> tuple[list[str], tuple, dict]:
    """Input names, example tensors and dynamic axes of a bundle's feature graph."""
    cfg = bundle.card.features
    variable = bool(getattr(bundle.model, "variable_length", False))
    names, examples, axes = [], [], {}
    from ser.dataset import spaces_for

    for space in spaces_for(bundle.input_space):
        names.append(space)
        examples.append(torch.zeros((batch, *cfg.input_shape(space))))
        axes[space] = {0: "batch", 3: "frames"} if space == "fs2" and variable else {
            0: "batch"}
    axes["probs"] = {0: "batch"}
    return names, tuple(examples), axes


def _to_onnx(module: nn.Module, examples: tuple, names: list[str], axes: dict, *,
             output: str = "probs") -> bytes:
    module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notes, not for users
        torch.onnx.export(module, examples, buf, dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=[output], dynamic_axes=axes,
                          do_constant_folding=True)
    return buf.getvalue()


def logits_graph(bundle: Bundle) -> bytes:
    """The bundle's network alone (standardised features → logits), for `OnnxLogits`."""
    names, examples, axes = feature_inputs(bundle)
    axes["logits"] = axes.pop("probs")
    return _to_onnx(bundle.model.float().eval(), examples, names, axes, output="logits")


class OnnxLogits:
    """Stands in for a bundle's torch network inside a `ser.inference.Predictor`: the same
    call (torch tensors in, logits out), computed by onnxruntime on one thread."""

    def __init__(self, graph: bytes | str | Path):
        ort = require("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        source = graph if isinstance(graph, bytes) else str(graph)
        self.session = ort.InferenceSession(source, sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {n: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
                for n, x in zip(self.inputs, inputs)}
        return torch.from_numpy(self.session.run(["logits"], feed)[0])


def _with_metadata(data: bytes, card: dict) -> bytes:
    """The model with the card as ONNX metadata (``ser_card``), so the file explains itself."""
    onnx = require("onnx")
    model = onnx.load_from_string(data)
    entry = model.metadata_props.add()
    entry.key, entry.value = "ser_card", json.dumps(card)
    labels = model.metadata_props.add()
    labels.key, labels.value = "labels", ",".join(config.LABELS)
    return model.SerializeToString()


def export_card(bundle: Bundle, *, kind: str, inputs: list[str], dynamic: dict) -> dict:
    card = bundle.card.to_dict()
    cfg = bundle.card.features
    card["onnx"] = {
        "graph": kind, "inputs": inputs, "output": "probs", "labels": list(config.LABELS),
        "opset": OPSET, "dynamic_axes": dynamic, "sample_rate": cfg.sample_rate,
        "window_samples": cfg.fs2_frames * cfg.hop_length,
        "normalisation_inside": kind == "waveform",
        "note": ("mono float32 samples in [-1, 1] at sample_rate, one window per row"
                 if kind == "waveform" else
                 "standardised features: (x - mean) / std with the card's normalisation")}
    return card


def export_onnx(bundle: Bundle, dest: str | Path, *, waveform: bool = False) -> list[Path]:
    """Write ``dest`` (``.onnx``, the feature graph) and its card ``dest.json``; with
    ``waveform`` also ``<stem>.waveform.onnx`` (samples → probabilities) and its card.
    Returns the files written. Raises `ExportError` with a clear message."""
    from ser.fileio import atomic_write_bytes, write_json

    require("onnx")
    dest = Path(dest)
    if dest.suffix != ".onnx":
        dest = dest.with_suffix(".onnx")
    model = bundle.model.float().eval()
    names, examples, axes = feature_inputs(bundle)
    card = export_card(bundle, kind="features", inputs=names,
                       dynamic={k: list(v.values()) for k, v in axes.items()})
    graphs = [(dest, _to_onnx(Probabilities(model), examples, names, axes), card)]
    if waveform and bundle.card.training.length == "variable":
        raise ExportError("This model reads each clip at its own length (trained with "
                          "--length variable); the waveform graph cuts fixed 5-s windows. "
                          "Export the feature graph (--onnx) and feed it whole clips.")
    if waveform:
        graph = WaveformGraph(bundle)
        window = bundle.card.features.fs2_frames * bundle.card.features.hop_length
        wave_axes = {"waveform": {0: "batch", 1: "samples"}, "probs": {0: "batch"}}
        wave_card = export_card(bundle, kind="waveform", inputs=["waveform"],
                                dynamic={k: list(v.values()) for k, v in wave_axes.items()})
        graphs.append((dest.with_name(dest.stem + ".waveform.onnx"),
                       _to_onnx(graph, (torch.zeros(2, window),), ["waveform"], wave_axes),
                       wave_card))
    written = []
    for path, data, c in graphs:
        atomic_write_bytes(path, _with_metadata(data, c))
        write_json(path.with_suffix(".json"), c)
        written += [path, path.with_suffix(".json")]
    return written


# ------------------------------------------------------------------------ running

class OnnxModel:
    """An exported graph run by onnxruntime (one thread unless asked otherwise)."""

    def __init__(self, path: str | Path, *, threads: int = 1):
        ort = require("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        feed = {n: np.ascontiguousarray(a, dtype=np.float32) for n, a in zip(self.inputs,
                                                                             arrays)}
        return self.session.run(["probs"], feed)[0]
