"""Plotly figure builders shared by the pages (no Streamlit here: figures in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ser import config

EMOTION_COLORS = {"angry": "#d62828", "disgust": "#6a994e", "fear": "#7b2cbf",
                  "happy": "#f4a261", "neutral": "#8d99ae", "sad": "#277da1"}
FS1_GROUPS = [("ZCR", 1), ("RMS", 1), ("MFCC", config.N_MFCC), ("chroma", config.N_CHROMA),
              ("contrast", config.CONTRAST_ROWS), ("mel power", config.N_MELS)]
_LAYOUT = dict(margin=dict(l=50, r=20, t=50, b=40), template="plotly_white", height=340)


def _fig(title: str, **kw) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **{**_LAYOUT, **kw})
    return fig


def emotion_counts(manifest: pd.DataFrame, title: str = "Clips per emotion") -> go.Figure:
    counts = manifest["emotion"].value_counts().reindex(config.LABELS, fill_value=0)
    fig = _fig(title)
    fig.add_bar(x=list(counts.index), y=counts.values, text=counts.values,
                marker_color=[EMOTION_COLORS[e] for e in counts.index])
    fig.update_layout(yaxis_title="clips", showlegend=False)
    return fig


def stacked_counts(manifest: pd.DataFrame, by: str, title: str) -> go.Figure:
    """Clips per value of ``by`` (actor, sentence, intensity), stacked by emotion."""
    tab = pd.crosstab(manifest[by], manifest["emotion"]).reindex(columns=config.LABELS,
                                                                 fill_value=0)
    fig = _fig(title, barmode="stack")
    for e in config.LABELS:
        fig.add_bar(x=[str(i) for i in tab.index], y=tab[e], name=e,
                    marker_color=EMOTION_COLORS[e])
    fig.update_layout(yaxis_title="clips", xaxis_type="category")
    return fig


def duration_histogram(manifest: pd.DataFrame) -> go.Figure:
    fig = _fig("Clip durations")
    for e in config.LABELS:
        d = manifest.loc[manifest["emotion"] == e, "duration_s"]
        fig.add_histogram(x=d, name=e, marker_color=EMOTION_COLORS[e], opacity=0.6,
                          xbins=dict(size=0.1))
    fig.update_layout(barmode="overlay", xaxis_title="seconds", yaxis_title="clips")
    return fig


def waveform(y: np.ndarray, sr: int, title: str = "Waveform") -> go.Figure:
    step = max(1, len(y) // 6000)  # enough points for the eye, light for the browser
    t = np.arange(0, len(y), step) / sr
    fig = _fig(title, height=260)
    fig.add_scatter(x=t, y=y[::step], mode="lines", line=dict(width=1, color="#4361ee"))
    fig.update_layout(xaxis_title="time (s)", yaxis_title="amplitude", yaxis_range=[-1, 1])
    return fig


def spectrum(y: np.ndarray, sr: int, title: str = "Spectrum (FFT magnitude)") -> go.Figure:
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    db = 20 * np.log10(np.maximum(mag, 1e-10) / max(mag.max(), 1e-10))
    step = max(1, len(freqs) // 4000)
    fig = _fig(title, height=260)
    fig.add_scatter(x=freqs[::step], y=db[::step], mode="lines", line=dict(width=1))
    fig.update_layout(xaxis_title="frequency (Hz)", yaxis_title="dB re max",
                      yaxis_range=[-100, 2])
    return fig


def heatmap(z: np.ndarray, *, title: str, x: np.ndarray | None = None,
            y: np.ndarray | None = None, xaxis: str = "time (s)", yaxis: str = "",
            colorbar: str = "dB", colorscale: str = "Magma", zmin=None, zmax=None,
            height: int = 320) -> go.Figure:
    fig = _fig(title, height=height)
    fig.add_heatmap(z=z, x=x, y=y, colorscale=colorscale, zmin=zmin, zmax=zmax,
                    colorbar=dict(title=colorbar))
    fig.update_layout(xaxis_title=xaxis, yaxis_title=yaxis)
    return fig


def stft_spectrogram(y: np.ndarray, sr: int, n_fft: int = config.N_FFT,
                     hop: int = config.HOP_LENGTH) -> go.Figure:
    import librosa

    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    db = librosa.amplitude_to_db(S, ref=np.max) if S.max() > 0 else np.full(S.shape, -80.0)
    t = np.arange(db.shape[1]) * hop / sr
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    return heatmap(db, title="STFT spectrogram (dB re max)", x=t, y=f, yaxis="frequency (Hz)",
                   zmin=-80, zmax=0)


def mel_image(fs2: np.ndarray, sr: int = config.SAMPLE_RATE, hop: int = config.HOP_LENGTH,
              title: str = "Mel-spectrogram, FS2 exactly as the models see it") -> go.Figure:
    t = np.arange(fs2.shape[1]) * hop / sr
    return heatmap(fs2, title=title, x=t, y=np.arange(fs2.shape[0]), yaxis="mel band",
                   zmin=-80, zmax=0)


def mfcc_image(y: np.ndarray, sr: int) -> go.Figure:
    import librosa

    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=config.N_MFCC, n_fft=config.N_FFT,
                             hop_length=config.HOP_LENGTH)
    t = np.arange(m.shape[1]) * config.HOP_LENGTH / sr
    return heatmap(m, title="MFCCs", x=t, y=np.arange(m.shape[0]), yaxis="coefficient",
                   colorbar="", colorscale="RdBu_r")


def fs1_vector(v: np.ndarray, title: str = "FS1: the 169-d vector the 1D models see"
               ) -> go.Figure:
    """Each group of FS1 on its own scale (they span many orders of magnitude): z-scored
    within the group for display, with the raw value in the hover text."""
    fig = _fig(title, height=300)
    start = 0
    palette = ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#4361ee"]
    for (name, n), color in zip(FS1_GROUPS, palette):
        part = v[start:start + n]
        disp = (part - part.mean()) / (part.std() + 1e-9) if n > 1 else np.sign(part) * 0.5
        fig.add_bar(x=np.arange(start, start + n), y=disp, name=f"{name} ({n})",
                    marker_color=color, customdata=part,
                    hovertemplate="dim %{x}: %{customdata:.4g}<extra>" + name + "</extra>")
        start += n
    fig.update_layout(xaxis_title="dimension", yaxis_title="value (scaled per group)",
                      bargap=0)
    return fig


def probability_bars(probs: np.ndarray, title: str = "", height: int = 260) -> go.Figure:
    fig = _fig(title, height=height)
    fig.add_bar(x=list(probs), y=list(config.LABELS), orientation="h",
                marker_color=[EMOTION_COLORS[e] for e in config.LABELS],
                text=[f"{p:.0%}" for p in probs], textposition="auto")
    fig.update_layout(xaxis_range=[0, 1], xaxis_tickformat=".0%", showlegend=False,
                      yaxis=dict(autorange="reversed"), margin=dict(l=70, r=20, t=40, b=30))
    return fig


def emotion_timeline(starts: np.ndarray, window_probs: np.ndarray, window_s: float
                     ) -> go.Figure:
    """Stacked areas of each emotion's probability over the clip's windows."""
    centres = np.asarray(starts) + window_s / 2
    fig = _fig("Emotion over time (one point per 5-s window, half-overlapping)", height=280)
    for i, e in enumerate(config.LABELS):
        fig.add_scatter(x=centres, y=window_probs[:, i], name=e, stackgroup="p", mode="lines",
                        line=dict(width=0.5, color=EMOTION_COLORS[e]))
    fig.update_layout(xaxis_title="time (s), window centre", yaxis_range=[0, 1],
                      yaxis_tickformat=".0%")
    return fig


def training_curves(metrics: list[dict], title: str = "") -> go.Figure:
    """Step loss (thin), epoch train/val loss, and val accuracy/UAR on a second axis."""
    from plotly.subplots import make_subplots

    steps = [m for m in metrics if m.get("type") == "step"]
    epochs = [m for m in metrics if m.get("type") == "epoch"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Validation accuracy / UAR"))
    if steps:
        fig.add_scatter(x=[s["epoch"] - 1 + s.get("epoch_progress", 1) for s in steps],
                        y=[s["loss"] for s in steps], mode="lines", name="step loss",
                        line=dict(width=1, color="#adb5bd"), row=1, col=1)
    if epochs:
        x = [e["epoch"] for e in epochs]
        fig.add_scatter(x=x, y=[e["train_loss"] for e in epochs], name="train loss",
                        mode="lines+markers", line=dict(color="#4361ee"), row=1, col=1)
        fig.add_scatter(x=x, y=[e["val_loss"] for e in epochs], name="val loss",
                        mode="lines+markers", line=dict(color="#e76f51"), row=1, col=1)
        fig.add_scatter(x=x, y=[e["train_accuracy"] for e in epochs], name="train accuracy",
                        mode="lines+markers", line=dict(color="#4361ee", dash="dot"), row=1,
                        col=2)
        fig.add_scatter(x=x, y=[e["val_accuracy"] for e in epochs], name="val accuracy",
                        mode="lines+markers", line=dict(color="#e76f51"), row=1, col=2)
        fig.add_scatter(x=x, y=[e["val_uar"] for e in epochs], name="val UAR",
                        mode="lines+markers", line=dict(color="#2a9d8f"), row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    fig.update_layout(title=title, **{**_LAYOUT, "height": 360})
    return fig


def overlaid_curves(curves: dict[str, list[dict]], key: str = "val_uar") -> go.Figure:
    fig = _fig(f"{key.replace('_', ' ')} per epoch")
    for name, metrics in curves.items():
        ep = [m for m in metrics if m.get("type") == "epoch"]
        fig.add_scatter(x=[e["epoch"] for e in ep], y=[e.get(key) for e in ep], name=name,
                        mode="lines+markers")
    fig.update_layout(xaxis_title="epoch", yaxis_title=key)
    return fig


def confusion(cm, title: str = "Confusion matrix", normalise: bool = True) -> go.Figure:
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalise else cm
    text = [[f"{v:.0%}<br>({int(c)})" if normalise else str(int(c)) for v, c in zip(rv, rc)]
            for rv, rc in zip(shown, cm)]
    fig = _fig(title, height=380)
    fig.add_heatmap(z=shown, x=list(config.LABELS), y=list(config.LABELS), text=text,
                    texttemplate="%{text}", colorscale="Blues", zmin=0,
                    zmax=1 if normalise else None, showscale=False,
                    hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>")
    # Invisible markers on the cell centres make each cell clickable (heatmaps themselves
    # do not report selections).
    xs = [p for _ in config.LABELS for p in config.LABELS]
    ys = [t for t in config.LABELS for _ in config.LABELS]
    fig.add_scatter(x=xs, y=ys, mode="markers", marker=dict(size=38, color="rgba(0,0,0,0.01)"),
                    hoverinfo="skip", showlegend=False)
    fig.update_layout(xaxis_title="predicted", yaxis_title="true",
                      yaxis=dict(autorange="reversed"))
    return fig


def accuracy_by_architecture(table: pd.DataFrame, metric: str = "accuracy") -> go.Figure:
    """The seeds' bar chart: one bar per model, 1D and 2D groups side by side."""
    fig = _fig(f"Test {metric} by architecture", height=380)
    for fam, color in (("1D CNN", "#2a9d8f"), ("2D CNN", "#4361ee"), ("1D+2D", "#e76f51")):
        sub = table[table["family"] == fam]
        if len(sub):
            fig.add_bar(x=sub["model"], y=sub[metric], name=fam, marker_color=color,
                        text=[f"{v:.1%}" for v in sub[metric]], textposition="outside")
    fig.update_layout(yaxis_range=[0, 1], yaxis_tickformat=".0%", xaxis_title="",
                      yaxis_title=metric)
    return fig


def per_class_f1(rows: dict[str, dict]) -> go.Figure:
    """Heatmap: models (rows) × emotions (columns) → F1."""
    names = list(rows)
    z = [[rows[n][e]["f1"] for e in config.LABELS] for n in names]
    fig = _fig("Per-class F1", height=120 + 32 * len(names))
    fig.add_heatmap(z=z, x=list(config.LABELS), y=names, colorscale="Viridis", zmin=0, zmax=1,
                    text=[[f"{v:.2f}" for v in r] for r in z], texttemplate="%{text}")
    fig.update_layout(yaxis=dict(autorange="reversed"))
    return fig


def slice_bars(slices: dict[str, dict[str, dict]], by: str, metric: str = "accuracy"
               ) -> go.Figure:
    """Grouped bars: for each model, ``metric`` on each value of ``by``."""
    fig = _fig(f"Test {metric} by {by}", barmode="group")
    for name, sl in slices.items():
        vals = sl.get(by, {})
        fig.add_bar(x=list(vals), y=[v[metric] for v in vals.values()], name=name)
    fig.update_layout(yaxis_range=[0, 1], yaxis_tickformat=".0%")
    return fig


def architecture_diagram(layers: list[dict], title: str = "") -> go.Figure:
    """Boxes from input to output; width ∝ log(parameters), label = layer and shape."""
    shown = [r for r in layers if r.get("params", 0) or r["type"] in (
        "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
        "AdaptiveAvgPool2d", "Flatten")]
    shown = shown[:40]
    palette = {"Conv": "#4361ee", "Linear": "#e76f51", "Pool": "#2a9d8f", "Norm": "#e9c46a"}
    fig = _fig(title or "Layer diagram", height=max(260, 26 * len(shown) + 60))
    for i, r in enumerate(shown):
        kind = next((k for k in palette if k in r["type"]), "Other")
        w = 0.3 + 0.7 * np.log10(1 + r.get("params", 0)) / 7
        fig.add_shape(type="rect", x0=-w, x1=w, y0=-i - 0.4, y1=-i + 0.4,
                      fillcolor=palette.get(kind, "#adb5bd"), line=dict(width=0), opacity=0.85)
        fig.add_annotation(x=0, y=-i, text=f"{r['type']} → {tuple(r['output_shape'])}",
                           showarrow=False, font=dict(size=11, color="white"))
    fig.update_xaxes(visible=False, range=[-1.05, 1.05])
    fig.update_yaxes(visible=False, range=[-len(shown) + 0.5, 0.6])
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
    return fig
