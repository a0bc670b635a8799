"""Plotly figure builders shared by the pages (no Streamlit here: figures in, figures out)."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ser import config

EMOTION_COLORS = {"angry": "#d62828", "disgust": "#6a994e", "fear": "#7b2cbf",
                  "happy": "#f4a261", "neutral": "#8d99ae", "sad": "#277da1"}
FS1_GROUPS = [("ZCR", 1), ("RMS", 1), ("MFCC", config.N_MFCC), ("chroma", config.N_CHROMA),
              ("contrast", config.CONTRAST_ROWS), ("mel power", config.N_MELS)]
#: No named template: building one costs ~20 ms a figure and ~7 kB of JSON each. In the app
#: Plotly's default template is Streamlit's own (the look of its theme), elsewhere Plotly's.
_LAYOUT = dict(margin=dict(l=50, r=20, t=50, b=40), height=340)
#: Characters per title line: what fits across a chart on a phone (about 360 px). Plotly
#: never wraps a title, so a longer one ran off the chart's right edge there.
TITLE_CHARS = 44
#: Height of Plotly's toolbar. Touch screens show it at all times (desktops on hover), at the
#: top right, where it covered the end of the title; titles now start below it.
TOOLBAR_PX = 34
_TITLE_LINE_PX = 22


def title_lines(title: str, width: int = TITLE_CHARS) -> list[str]:
    """``title`` broken at spaces into lines of at most ``width`` characters (a longer word
    stays whole). Existing ``<br>`` breaks are kept; a ``<sup>…</sup>`` line (small type)
    gets 40 % more characters and each of its lines keeps the tags."""
    lines = []
    for part in title.split("<br>"):
        small = part.startswith("<sup>") and part.endswith("</sup>")
        text = part[len("<sup>"):-len("</sup>")] if small else part
        wrapped = textwrap.wrap(text, int(width * 1.4) if small else width,
                                break_long_words=False, break_on_hyphens=False) or [""]
        lines += [f"<sup>{line}</sup>" for line in wrapped] if small else wrapped
    return lines


def _title_px(lines: int) -> int:
    """Top margin that ``lines`` of title need below the toolbar (0 without a title)."""
    return TOOLBAR_PX + _TITLE_LINE_PX * lines + 8 if lines else 0


def _set_margin(fig: go.Figure, *, l: int, r: int, t: int, b: int) -> None:  # noqa: E741
    """Give ``fig`` these margins, the top one enlarged to fit its (wrapped) title above
    what ``t`` held beyond the default title's 50 px (labels of a top axis); the figure
    grows by the same amount, so the plot keeps its height."""
    default = _LAYOUT["margin"]["t"]
    text = fig.layout.title.text or ""
    need = _title_px(len(text.split("<br>")) if text else 0)
    top = max(t, need + max(0, t - default)) if need else t
    # the height asked of `_fig`, before `_layout` grew it for the title
    asked = (fig.layout.height or _LAYOUT["height"]) - ((fig.layout.margin.t or default) - default)
    fig.update_layout(margin=dict(l=l, r=r, t=top, b=b), height=asked + top - t)


def _layout(title: str, **kw) -> dict:
    """The shared layout with ``title`` wrapped to a phone's width and set below the toolbar;
    the top margin grows with the title's lines and the figure with it, so the plot keeps
    its height."""
    layout = {**_LAYOUT, **kw}
    if not title:
        return {**layout, "title": ""}
    lines = title_lines(title)
    margin = {**_LAYOUT["margin"], **layout.get("margin", {})}
    top = max(margin["t"], _title_px(len(lines)))
    layout["height"] = layout["height"] + top - margin["t"]
    margin["t"] = top
    # Plotly sets a title of two or more lines about half a line higher than one line (its
    # first line then met the toolbar; measured in Chromium), so the pad adds that back.
    pad = TOOLBAR_PX + (14 if len(lines) > 1 else 0)
    return {**layout, "margin": margin,
            "title": dict(text="<br>".join(lines), yref="container", y=1, yanchor="top",
                          pad=dict(t=pad))}


def safe_scale(name: str) -> list[list]:
    """Plotly's named continuous scale ``name`` as ``[position, "rgb(r,g,b)"]`` pairs.

    Streamlit's chart theme swaps the colours ``#000001``…``#000040`` in a figure for its
    own palette (they are its placeholders), and Magma and Inferno start at ``#000004``:
    passed by name, their darkest colour (−80 dB, silence) turned bright pink. Written as
    ``rgb()`` the colours reach the browser unchanged. Every heatmap here uses it.
    """
    from plotly.colors import get_colorscale, hex_to_rgb

    out = []
    for pos, color in get_colorscale(name):
        if color.startswith("#"):
            color = "rgb({},{},{})".format(*hex_to_rgb(color))
        out.append([pos, color])
    return out


#: The scale of every spectrogram: perceptually uniform, silence (low) dark.
SPECTROGRAM_SCALE = "Magma"
#: Largest image sent to the browser: about the pixels a chart has on screen.
DISPLAY_ROWS, DISPLAY_COLS = 256, 900


def display_resolution(z: np.ndarray, axis_values: tuple | None = None,
                       rows: int = DISPLAY_ROWS, cols: int = DISPLAY_COLS):
    """Shrink an image to at most ``rows`` × ``cols`` cells by taking the maximum of each
    block (a thin harmonic stays visible). ``axis_values`` = (x, y) arrays are thinned to
    match. Returns ``(z, x, y)``."""
    z = np.asarray(z, dtype=np.float32)
    x, y = axis_values if axis_values is not None else (None, None)
    fr = max(1, int(np.ceil(z.shape[0] / rows)))
    fc = max(1, int(np.ceil(z.shape[1] / cols)))
    if fr > 1 or fc > 1:
        pr, pc = (-z.shape[0]) % fr, (-z.shape[1]) % fc
        padded = np.pad(z, ((0, pr), (0, pc)), mode="edge")
        z = padded.reshape(padded.shape[0] // fr, fr, padded.shape[1] // fc, fc).max(axis=(1, 3))
        if x is not None:
            x = np.asarray(x)[::fc][:z.shape[1]]
        if y is not None:
            y = np.asarray(y)[::fr][:z.shape[0]]
    return z, x, y


def _fig(title: str, **kw) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(**_layout(title, **kw))
    return fig


def emotion_counts(manifest: pd.DataFrame, title: str = "Clips per emotion") -> go.Figure:
    counts = manifest["emotion"].value_counts().reindex(config.LABELS, fill_value=0)
    fig = _fig(title)
    fig.add_bar(x=list(counts.index), y=counts.values, text=counts.values,
                marker_color=[EMOTION_COLORS[e] for e in counts.index])
    fig.update_layout(yaxis_title="clips", showlegend=False)
    return fig


#: Intensity levels from weakest to strongest (not alphabetical: high, low, medium).
INTENSITY_ORDER = ["low", "medium", "high", "unspecified"]


def ordered_values(values, by: str) -> list:
    """The distinct ``values`` of column ``by`` in reading order: intensity levels from low
    to high (unknown levels after them), anything else sorted."""
    distinct = sorted({v for v in values if isinstance(v, str) or pd.notna(v)}, key=str)
    if by != "intensity":
        return distinct
    rank = {v: i for i, v in enumerate(INTENSITY_ORDER)}
    return sorted(distinct, key=lambda v: (rank.get(v, len(rank) - 0.5), str(v)))


def stacked_counts(manifest: pd.DataFrame, by: str, title: str,
                   names: dict[str, str] | None = None) -> go.Figure:
    """Clips per value of ``by`` (actor, sentence, intensity, corpus), stacked by emotion.
    With ``names`` (value → display name, e.g. a pool's corpora) the bars follow its order
    and carry its names."""
    tab = pd.crosstab(manifest[by], manifest["emotion"]).reindex(columns=config.LABELS,
                                                                 fill_value=0)
    order = ordered_values(tab.index, by)
    if names:
        order = [v for v in names if v in order] + [v for v in order if v not in names]
    tab = tab.reindex(order)
    fig = _fig(title, barmode="stack")
    labels = [str((names or {}).get(i, i)) for i in tab.index]
    for e in config.LABELS:
        fig.add_bar(x=labels, y=tab[e], name=e,
                    marker_color=EMOTION_COLORS[e])
    fig.update_layout(yaxis_title="clips", xaxis_type="category")
    if len(tab) > MAX_TICK_LABELS:  # a pool's 100+ speakers: labels would be a smear
        fig.update_xaxes(showticklabels=False,
                         title_text=f"{len(tab)} {by}s (hover for the name)")
    return fig


#: Above this many bars a categorical axis hides its labels (hover still names each bar).
MAX_TICK_LABELS = 60


def duration_histogram(manifest: pd.DataFrame) -> go.Figure:
    """Clip durations, one box per emotion (overlaid histograms of six colours merged into
    one block), with every emotion's median readable side by side."""
    fig = _fig("Clip durations by emotion")
    for e in config.LABELS:
        d = manifest.loc[manifest["emotion"] == e, "duration_s"]
        if len(d):
            fig.add_box(x=d, name=e, marker_color=EMOTION_COLORS[e], boxpoints="outliers",
                        orientation="h",
                        hovertemplate=e + ": %{x:.2f} s<extra></extra>")
    fig.update_layout(xaxis_title="seconds", showlegend=False,
                      yaxis=dict(autorange="reversed"))
    return fig


def envelope(y: np.ndarray, sr: int, columns: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of a waveform drawn as its min/max per column: looks like every
    sample at chart width, with at most ``2 × columns`` points for the browser."""
    y = np.asarray(y, dtype=np.float32)
    if len(y) <= 2 * columns:
        return np.arange(len(y)) / sr, y
    size = int(np.ceil(len(y) / columns))
    pad = (-len(y)) % size
    blocks = np.pad(y, (0, pad), mode="edge").reshape(-1, size)
    t = np.repeat(np.arange(len(blocks)) * size / sr, 2)
    v = np.stack([blocks.min(axis=1), blocks.max(axis=1)], axis=1).ravel()
    return t, v


def waveform(y: np.ndarray, sr: int, title: str = "Waveform") -> go.Figure:
    """The samples over time; the amplitude axis follows the clip's peak (a quiet clip is
    not a flat line on a ±1 axis), and the title gives the peak in dBFS."""
    t, v = envelope(y, sr)  # enough points for the eye, light for the browser
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    level = f"peak {20 * np.log10(peak):.0f} dBFS" if peak > 0 else "silent"
    fig = _fig(f"{title} ({level}; axis scaled to the peak)", height=260)
    fig.add_scatter(x=t, y=v, mode="lines", line=dict(width=1, color="#4361ee"))
    top = max(peak * 1.1, 1e-3)
    fig.update_layout(xaxis_title="time (s)", yaxis_title="amplitude (full scale = 1)",
                      yaxis_range=[-top, top])
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
            colorbar: str = "dB", colorscale: str = SPECTROGRAM_SCALE, zmin=None, zmax=None,
            height: int = 320) -> go.Figure:
    """An image at display resolution with a titled colour bar (see `safe_scale`)."""
    z, x, y = display_resolution(z, (x, y))
    fig = _fig(title, height=height)
    fig.add_heatmap(z=z, x=x, y=y, colorscale=safe_scale(colorscale), zmin=zmin, zmax=zmax,
                    colorbar=dict(title=dict(text=colorbar, side="right")),
                    hovertemplate=f"%{{x:.2f}} s, {yaxis or 'y'} %{{y:.0f}}: %{{z:.1f}} "
                                  f"{colorbar}<extra></extra>")
    fig.update_layout(xaxis_title=xaxis, yaxis_title=yaxis)
    return fig


def stft_spectrogram(y: np.ndarray, sr: int, n_fft: int = config.N_FFT,
                     hop: int = config.HOP_LENGTH) -> go.Figure:
    import librosa

    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    db = librosa.amplitude_to_db(S, ref=np.max) if S.max() > 0 else np.full(S.shape, -80.0)
    t = np.arange(db.shape[1]) * hop / sr
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    return heatmap(db, title="STFT spectrogram", x=t, y=f, yaxis="frequency (Hz)",
                   colorbar="dB re max", zmin=-80, zmax=0)


def mel_image(fs2: np.ndarray, sr: int = config.SAMPLE_RATE, hop: int = config.HOP_LENGTH,
              title: str = "Mel-spectrogram, FS2 exactly as the models see it") -> go.Figure:
    t = np.arange(fs2.shape[1]) * hop / sr
    return heatmap(fs2, title=title, x=t, y=np.arange(fs2.shape[0]), yaxis="mel band",
                   colorbar="dB re max", zmin=-80, zmax=0)


def mfcc_image(y: np.ndarray, sr: int) -> go.Figure:
    import librosa

    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=config.N_MFCC, n_fft=config.N_FFT,
                             hop_length=config.HOP_LENGTH)
    t = np.arange(m.shape[1]) * config.HOP_LENGTH / sr
    return heatmap(m, title="MFCCs", x=t, y=np.arange(m.shape[0]), yaxis="coefficient",
                   colorbar="value", colorscale="RdBu_r")


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
                      yaxis=dict(autorange="reversed"))
    _set_margin(fig, l=70, r=20, t=40, b=30)
    return fig


def model_probabilities(names: list[str], probs: np.ndarray, notes: list[str] | None = None,
                        title: str = "What each model hears") -> go.Figure:
    """One compact heatmap instead of a bar chart per model: models (rows, in the order
    given) × emotions (columns), each cell its probability, each row's top emotion boxed.
    ``notes`` (one per model, e.g. its test accuracy and protocol) go into the hover."""
    probs = np.asarray(probs, dtype=float)
    notes = notes or [""] * len(names)
    text = [[f"<b>{v:.0%}</b>" if j == int(np.argmax(row)) else f"{v:.0%}"
             for j, v in enumerate(row)] for row in probs]
    # On a phone the names took most of the width and left the six columns 60 px: a long
    # name is shown on two lines, and there is no colour bar (every cell prints its value).
    shown = [name_lines(n) for n in names]
    row_px = 36 if any("<br>" in n for n in shown) else 30
    fig = _fig(title, height=110 + row_px * max(len(names), 1))
    fig.add_heatmap(z=probs, x=list(config.LABELS), y=shown, text=text,
                    texttemplate="%{text}", colorscale=safe_scale("Blues"), zmin=0, zmax=1,
                    customdata=[[[m, note]] * len(config.LABELS) for m, note in zip(names, notes)],
                    xgap=1, ygap=1, showscale=False,
                    hovertemplate="%{customdata[0]}: %{x} %{z:.1%}<br>%{customdata[1]}"
                                  "<extra></extra>")
    for i, row in enumerate(probs):
        j = int(np.argmax(row))
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                      line=dict(color=EMOTION_COLORS[config.LABELS[j]], width=3))
    fig.update_layout(xaxis=dict(side="top", tickangle=0, tickfont=dict(size=11)),
                      yaxis=dict(autorange="reversed", automargin=True,
                                 tickfont=dict(size=11)))
    _set_margin(fig, l=10, r=10, t=70, b=10)
    return fig


def name_lines(name: str, width: int = 20) -> str:
    """A model name longer than ``width`` characters broken once, at the "-" or "." nearest
    its middle (``ser2d.crema-si-pitch-<br>stretch-x3``), for a chart's axis on a phone."""
    if len(name) <= width:
        return name
    cuts = [i + 1 for i, c in enumerate(name[:-1]) if c in "-."]
    if not cuts:
        return name
    cut = min(cuts, key=lambda i: abs(i - len(name) / 2))
    return f"{name[:cut]}<br>{name[cut:]}"


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


def training_curves(metrics: list[dict], title: str = "", epochs: int | None = None
                    ) -> go.Figure:
    """Step loss (thin), epoch train/val loss, and val accuracy/UAR on a second axis.

    The epoch axis is whole numbers from 0 to ``epochs`` (the planned count) from the first
    step on, so one epoch is a point at 1 on a 0…N axis, not a lone dot on a fractional
    axis; short series get markers so a single point is visible."""
    from plotly.subplots import make_subplots

    steps = [m for m in metrics if m.get("type") == "step"]
    ep = [m for m in metrics if m.get("type") == "epoch"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy / UAR"))
    if steps:
        fig.add_scatter(x=[s["epoch"] - 1 + s.get("epoch_progress", 1) for s in steps],
                        y=[s["loss"] for s in steps], name="step loss",
                        mode="lines+markers" if len(steps) < 30 else "lines",
                        marker=dict(size=4), line=dict(width=1, color="#adb5bd"),
                        row=1, col=1)
    if ep:
        x = [e["epoch"] for e in ep]
        for key, name, color, dash, col in (
                ("train_loss", "train loss", "#4361ee", None, 1),
                ("val_loss", "val loss", "#e76f51", None, 1),
                ("train_accuracy", "train accuracy", "#4361ee", "dot", 2),
                ("val_accuracy", "val accuracy", "#e76f51", None, 2),
                ("val_uar", "val UAR", "#2a9d8f", None, 2)):
            fig.add_scatter(x=x, y=[e[key] for e in ep], name=name, mode="lines+markers",
                            marker=dict(size=8 if len(ep) < 3 else 6),
                            line=dict(color=color, dash=dash), row=1, col=col)
        corpus = [(e["epoch"], e["train_corpus_acc"]) for e in ep
                  if e.get("train_corpus_acc") is not None]
        if corpus:  # corpus-adversarial runs: how well the corpus can still be read
            fig.add_scatter(x=[c[0] for c in corpus], y=[c[1] for c in corpus],
                            name="adversary's corpus accuracy (training)",
                            mode="lines+markers", marker=dict(size=6, symbol="x"),
                            line=dict(color="#6c757d", dash="dash"), row=1, col=2)
    last = max([e["epoch"] for e in ep] + [s["epoch"] for s in steps] + [1])
    span = max(int(epochs or 0), last)
    # At most 6 labels an axis: on a phone each panel is about 150 px wide, and 11 labels
    # ran into one another. The legend goes under the panels: at their side it took half a
    # phone's width.
    fig.update_xaxes(title_text="epoch", range=[0, span + 0.2], tick0=0,
                     dtick=max(1, int(np.ceil(span / 5))), tickformat="d")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    fig.update_layout(**_layout(title, height=400),
                      legend=dict(orientation="h", x=0, xanchor="left", y=-0.3,
                                  yanchor="top"))
    return fig


def overlaid_curves(curves: dict[str, list[dict]], key: str = "val_uar") -> go.Figure:
    """One line per run; the legend (run names are long) under the plot, where it can
    wrap on a phone instead of taking most of its width."""
    fig = _fig(f"{key.replace('_', ' ').replace('uar', 'UAR')} per epoch", height=400)
    for name, metrics in curves.items():
        ep = [m for m in metrics if m.get("type") == "epoch"]
        fig.add_scatter(x=[e["epoch"] for e in ep], y=[e.get(key) for e in ep], name=name,
                        mode="lines+markers")
    fig.update_layout(xaxis=dict(title="epoch", tickformat="d", rangemode="tozero"),
                      yaxis_title=key.replace("_", " ").replace("uar", "UAR"),
                      legend=dict(orientation="h", x=0, xanchor="left", y=-0.25,
                                  yanchor="top"))
    return fig


def confusion(cm, title: str = "Confusion matrix", normalise: bool = True) -> go.Figure:
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalise else cm
    text = [[f"{v:.0%}<br>({int(c)})" if normalise else str(int(c)) for v, c in zip(rv, rc)]
            for rv, rc in zip(shown, cm)]
    fig = _fig(title, height=380)
    fig.add_heatmap(z=shown, x=list(config.LABELS), y=list(config.LABELS), text=text,
                    texttemplate="%{text}", colorscale=safe_scale("Blues"), zmin=0,
                    zmax=1 if normalise else None, showscale=False, hoverinfo="skip")
    # Heatmap cells cannot be selected in Plotly, so a transparent marker on each cell
    # centre carries the hover text and the click / box selection (trace 1). It must not
    # use hoverinfo="skip": a point that ignores hover ignores clicks too.
    xs = [p for _ in config.LABELS for p in config.LABELS]
    ys = [t for t in config.LABELS for _ in config.LABELS]
    flat = [cell for row in text for cell in row]
    fig.add_scatter(x=xs, y=ys, mode="markers", customdata=flat, showlegend=False,
                    name="cells", marker=dict(size=30, symbol="square",
                                              color="rgba(0,0,0,0.003)"),
                    selected=dict(marker=dict(color="rgba(255,190,11,0.35)")),
                    unselected=dict(marker=dict(opacity=1)),
                    hovertemplate="true %{y}, predicted %{x}: %{customdata}<br>"
                                  "click to list these clips<extra></extra>")
    # Fixed ranges: the markers must not pad the axes (the matrix shrank to a strip).
    n = len(config.LABELS)
    fig.update_layout(xaxis=dict(title="predicted", range=[-0.5, n - 0.5]),
                      yaxis=dict(title="true", range=[n - 0.5, -0.5]),
                      clickmode="event+select")
    return fig


def confusion_cells(selection) -> list[tuple[str, str]]:
    """(true, predicted) of the cells picked in a `confusion` chart, from Streamlit's
    selection state (clicked or box-selected cell markers; duplicates removed)."""
    points = ((selection or {}).get("selection") or {}).get("points") or []
    cells = [(p.get("y"), p.get("x")) for p in points if p.get("curve_number", 1) == 1]
    return list(dict.fromkeys(c for c in cells if c[0] in config.LABELS
                              and c[1] in config.LABELS))


FAMILY_COLORS = {"1D CNN": "#2a9d8f", "2D CNN": "#4361ee", "1D+2D": "#e76f51",
                 "Pretrained encoder + head": "#b5838d",
                 "2D CNN + transformer": "#9d4edd"}


def accuracy_by_architecture(table: pd.DataFrame, metric: str = "accuracy",
                             subtitle: str = "") -> go.Figure:
    """One horizontal bar per model, best at the top, coloured by input family, each bar
    labelled with its model name (left) and value (right) so it reads without hovering."""
    t = table.dropna(subset=[metric]).sort_values(metric, ascending=False, kind="stable")
    title = f"Test {metric} by model, best first" + (f"<br><sup>{subtitle}</sup>"
                                                     if subtitle else "")
    fig = _fig(title, height=110 + 28 * max(len(t), 1))
    for fam in dict.fromkeys(t["family"]):
        sub = t[t["family"] == fam]
        fig.add_bar(y=sub["model"], x=sub[metric], name=fam, orientation="h",
                    marker_color=FAMILY_COLORS.get(fam, "#8d99ae"),
                    text=[f"{v:.1%}" for v in sub[metric]], textposition="outside",
                    cliponaxis=False, customdata=sub.get("display name"),
                    hovertemplate="%{y} (%{customdata}): %{x:.1%}<extra>" + str(fam)
                                  + "</extra>")
    top = float(t[metric].max()) if len(t) else 1.0
    # Every bar carries its value, so the x axis needs no labels; the legend goes under the
    # bars, where it can wrap to several rows on a phone without covering the title.
    fig.update_layout(xaxis=dict(range=[0, min(1.0, top + 0.12)], showticklabels=False,
                                 title=""),
                      yaxis=dict(categoryorder="array", categoryarray=list(t["model"]),
                                 autorange="reversed", automargin=True, title=""),
                      legend=dict(orientation="h", y=0, yanchor="top", x=0,
                                  xanchor="left", title=""))
    _set_margin(fig, l=10, r=40, t=50, b=40)
    return fig


def per_class_f1(rows: dict[str, dict]) -> go.Figure:
    """Heatmap: models (rows) × emotions (columns) → F1."""
    names = list(rows)
    z = [[rows[n][e]["f1"] for e in config.LABELS] for n in names]
    fig = _fig("Per-class F1", height=120 + 36 * len(names))
    # as `model_probabilities`: names on two lines, no colour bar (each cell prints its F1)
    fig.add_heatmap(z=z, x=list(config.LABELS), y=[name_lines(n) for n in names],
                    colorscale=safe_scale("Viridis"), zmin=0, zmax=1, showscale=False,
                    text=[[f"{v:.2f}" for v in r] for r in z], texttemplate="%{text}",
                    customdata=[[n] * len(config.LABELS) for n in names],
                    hovertemplate="%{customdata}: %{x} F1 %{z:.2f}<extra></extra>")
    fig.update_layout(yaxis=dict(autorange="reversed", tickfont=dict(size=11)),
                      xaxis=dict(tickangle=0, tickfont=dict(size=11)))
    return fig


def slice_bars(slices: dict[str, dict[str, dict]], by: str, metric: str = "accuracy"
               ) -> go.Figure:
    """Grouped bars: for each model, ``metric`` on each value of ``by``."""
    fig = _fig(f"Test {metric} by {by}", barmode="group")
    for name, sl in slices.items():
        vals = sl.get(by, {})
        keys = ordered_values(vals, by)  # intensity low → high, the rest sorted
        fig.add_bar(x=keys, y=[vals[k][metric] for k in keys], name=name)
    fig.update_layout(yaxis_range=[0, 1], yaxis_tickformat=".0%",  # legend: as overlaid_curves
                      legend=dict(orientation="h", x=0, xanchor="left", y=-0.2,
                                  yanchor="top"))
    return fig


_BLOCK = re.compile(r"^([A-Za-z_]*block[A-Za-z0-9_]*)\.(\d+)\.")
_SHOWN_WITHOUT_PARAMS = ("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
                         "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Flatten")


def diagram_rows(layers: list[dict]) -> list[dict]:
    """The boxes of `architecture_diagram`: each residual block (``blocks….N.*`` layers) and
    the attention pooling (``pool.score.*``) become one box each, with what they contain;
    other layers with parameters (and pooling/flatten) one box per layer."""
    rows: list[dict] = []
    for i, r in enumerate(layers):
        name, kind = r.get("layer", ""), r["type"]
        m = _BLOCK.match(name)
        if m:
            key = f"{m.group(1)}.{m.group(2)}"
            if not rows or rows[-1].get("key") != key:
                rows.append({"key": key, "kind": "residual", "params": 0, "layers": [],
                             "index": int(m.group(2)), "stage": m.group(1)})
            row = rows[-1]
            row["params"] += r.get("params", 0)
            row["layers"].append(kind)
            row["projection"] = row.get("projection", False) or ".shortcut" in name
            row["output_shape"] = r["output_shape"]
            continue
        if name.startswith("pool.score"):
            if not rows or rows[-1].get("key") != "pool":
                nxt = next((x for x in layers[i + 1:] if not x.get("layer", "").startswith(
                    "pool.")), None)
                rows.append({"key": "pool", "kind": "attention", "params": 0, "layers": [],
                             "output_shape": nxt["output_shape"] if nxt and nxt["type"] ==
                             "Dropout" else None})
            rows[-1]["params"] += r.get("params", 0)
            continue
        if r.get("params", 0) or kind in _SHOWN_WITHOUT_PARAMS:
            rows.append({"key": name, "kind": "layer", "type": kind,
                         "params": r.get("params", 0), "output_shape": r["output_shape"]})
    return rows


def _ink_on(hex_color: str) -> str:
    """White or near-black text, whichever reads on ``hex_color`` (relative luminance)."""
    r, g, b = (int(hex_color.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return "#1d1d1d" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.6 else "white"


def architecture_diagram(layers: list[dict], title: str = "") -> go.Figure:
    """Boxes from input to output; width ∝ log(parameters). Residual blocks are one box
    with their skip connection drawn beside it (⊕: added back before the activation);
    attention pooling is its own box (frame weights → weighted mean and std)."""
    rows = diagram_rows(layers)[:40]
    palette = {"Conv": "#4361ee", "Linear": "#e76f51", "Pool": "#2a9d8f", "Norm": "#e9c46a",
               "GRU": "#577590", "residual": "#3a0ca3", "attention": "#9b5de5"}
    fig = _fig(title or "Layer diagram", height=max(260, 30 * len(rows) + 70))
    for i, r in enumerate(rows):
        shape = tuple(r["output_shape"]) if r.get("output_shape") is not None else None
        arrow = f" → {' × '.join(map(str, shape))}" if shape else ""  # as in the table
        if r["kind"] == "residual":
            convs = sum(t.startswith("Conv") for t in r["layers"]) - (
                1 if r.get("projection") else 0)
            label = f"Residual block {r['stage']}[{r['index']}]: {convs} conv{arrow}"
            hover = (f"Residual block {r['stage']}[{r['index']}]: {convs} convolutions, "
                     f"each followed by a normalisation; the input is added back"
                     f"{' through a 1×1 conv' if r.get('projection') else ''}{arrow}")
            color = palette["residual"]
        elif r["kind"] == "attention":
            label = f"Attention pooling (mean + std){arrow}"
            hover = ("Attention pooling: a weight for every frame, then the weighted mean "
                     f"and standard deviation over frames{arrow}")
            color = palette["attention"]
        else:
            label = hover = f"{r['type']}{arrow}"
            color = next((c for k, c in palette.items() if k in r["type"]), "#adb5bd")
        w = 0.3 + 0.6 * np.log10(1 + r.get("params", 0)) / 7
        fig.add_shape(type="rect", x0=-w, x1=w, y0=-i - 0.4, y1=-i + 0.4, fillcolor=color,
                      line=dict(width=0), opacity=0.88)
        # The label has the box's colour behind it: a label longer than its box (a narrow
        # column) widens the box rather than running white-on-white past its edges.
        fig.add_annotation(x=0, y=-i, text=label, showarrow=False, hovertext=hover,
                           bgcolor=color, opacity=0.95, borderpad=2,
                           font=dict(size=11, color=_ink_on(color)))
        if r["kind"] == "residual":
            # The skip connection: from the block's input around the box to the ⊕.
            x0, x1 = w + 0.02, w + 0.12
            fig.add_shape(type="path", path=f"M {x0},{-i + 0.45} C {x1},{-i + 0.45} "
                          f"{x1},{-i - 0.45} {x0},{-i - 0.45}",
                          line=dict(color="#3a0ca3", width=2, dash="dot"))
            fig.add_annotation(x=x1 + 0.01, y=-i, xanchor="left", showarrow=False,
                               text="⊕ skip" + (" (1×1 conv)" if r.get("projection") else ""),
                               font=dict(size=10, color="#3a0ca3"))
    fig.update_xaxes(visible=False, range=[-1.05, 1.35])
    fig.update_yaxes(visible=False, range=[-len(rows) + 0.5, 0.6])
    _set_margin(fig, l=10, r=10, t=40, b=10)
    return fig


# ------------------------------------------------------------------ comparing corpora

#: Colours of corpora, in the order they appear (a pool rarely has more than eight).
CORPUS_PALETTE = ["#4361ee", "#e76f51", "#2a9d8f", "#9b5de5", "#f4a261", "#577590",
                  "#d62828", "#6a994e", "#8d99ae"]
#: A model whose most frequent prediction takes this share of a corpus has collapsed.
COLLAPSE_SHARE = 0.35


def _corpus_colors(corpora) -> dict[str, str]:
    return {c: CORPUS_PALETTE[i % len(CORPUS_PALETTE)] for i, c in enumerate(corpora)}


def corpus_emotion_bars(emotions: pd.DataFrame, names: dict[str, str] | None = None
                        ) -> go.Figure:
    """Grouped bars: clips per emotion (x) for each corpus (one bar per corpus).

    ``emotions`` has corpora as rows and the six emotions as columns (see
    :func:`ser.acoustics.corpus_counts`); ``names`` maps corpus keys to display names."""
    names = names or {}
    colors = _corpus_colors(emotions.index)
    fig = _fig("Clips per emotion and corpus", barmode="group")
    for key, row in emotions.iterrows():
        fig.add_bar(x=list(emotions.columns), y=row.values, name=names.get(key, key),
                    marker_color=colors[key],
                    text=row.values if len(emotions) <= 3 else None, textposition="outside")
    fig.update_layout(yaxis_title="clips")
    return fig


def outside_label_bars(outside: pd.DataFrame, names: dict[str, str] | None = None
                       ) -> go.Figure:
    """Clips whose corpus label is none of the six, by corpus and raw label."""
    names = names or {}
    fig = _fig("Labels outside the six (not used for training or scoring by default)",
               height=280)
    colors = _corpus_colors(dict.fromkeys(outside["corpus"]))
    for key, rows in outside.groupby("corpus", sort=False):
        fig.add_bar(x=[f"{names.get(key, key)}: {lab}" for lab in rows["label"]],
                    y=rows["clips"], name=names.get(key, key), marker_color=colors[key],
                    text=rows["clips"], textposition="outside")
    fig.update_layout(yaxis_title="clips", showlegend=False)
    return fig


def speakers_by_corpus(speakers: pd.DataFrame, names: dict[str, str] | None = None
                       ) -> go.Figure:
    """Stacked bars: speakers of each corpus by sex (``unknown`` where not recorded)."""
    names = names or {}
    order = list(dict.fromkeys(speakers["corpus"]))
    fig = _fig("Speakers per corpus", barmode="stack", height=300)
    for sex, color in (("female", "#e76f51"), ("male", "#4361ee"), ("unknown", "#adb5bd")):
        sub = speakers[speakers["sex"] == sex].set_index("corpus")["speakers"]
        if sub.empty:
            continue
        y = [int(sub.get(c, 0)) for c in order]
        fig.add_bar(x=[names.get(c, c) for c in order], y=y, name=sex, marker_color=color,
                    text=[v or "" for v in y])
    fig.update_layout(yaxis_title="speakers", xaxis_type="category")
    return fig


def distribution_by_corpus(df: pd.DataFrame, column: str, title: str, axis: str,
                           names: dict[str, str] | None = None, *, log: bool = False
                           ) -> go.Figure:
    """One box (with its points' spread) per corpus of ``df[column]``."""
    names = names or {}
    order = list(dict.fromkeys(df["corpus"]))
    colors = _corpus_colors(order)
    fig = _fig(title, height=320)
    for key in order:
        vals = df.loc[df["corpus"] == key, column].dropna()
        fig.add_box(y=vals, name=names.get(key, key), marker_color=colors[key],
                    boxmean=True, boxpoints="outliers")
    fig.update_layout(yaxis_title=axis, showlegend=False)
    if log:
        fig.update_yaxes(type="log")
    return fig


def measure_by_emotion(df: pd.DataFrame, column: str, title: str, axis: str,
                       names: dict[str, str] | None = None) -> go.Figure:
    """Median of ``df[column]`` per emotion (x, the six in order, then any other label),
    one bar per corpus, the clip count in each bar's hover."""
    names = names or {}
    order = list(dict.fromkeys(df["corpus"]))
    colors = _corpus_colors(order)
    present = set(df["label"].dropna())
    labels = [e for e in config.LABELS if e in present] + sorted(present - set(config.LABELS))
    fig = _fig(title, height=340)
    for key in order:
        sub = df[df["corpus"] == key].dropna(subset=[column])
        stats = sub.groupby("label")[column].agg(["median", "size"]).reindex(labels)
        name = names.get(key, key)
        fig.add_bar(x=labels, y=stats["median"], name=name, marker_color=colors[key],
                    customdata=stats["size"].fillna(0).astype(int),
                    hovertemplate="%{x}: %{y:.1f} (median of %{customdata} clips)"
                                  "<extra>" + name + "</extra>")
    fig.update_layout(barmode="group", yaxis_title=axis, xaxis_title="emotion")
    return fig


def ltas_lines(table: pd.DataFrame, title: str = "Long-term average spectrum",
               names: dict[str, str] | None = None, *, relative: bool = True,
               colors: dict[str, str] | None = None) -> go.Figure:
    """One line per row of an LTAS table (:func:`ser.acoustics.ltas_table`), frequency on a
    log axis; the legend gives each group's clip count."""
    names = names or {}
    freqs = [c for c in table.columns if c != "n"]
    fig = _fig(title, height=360)
    for i, (key, row) in enumerate(table.iterrows()):
        label = names.get(key, key if isinstance(key, str) else " / ".join(map(str, key)))
        color = (colors or {}).get(key) or EMOTION_COLORS.get(key) or \
            CORPUS_PALETTE[i % len(CORPUS_PALETTE)]
        fig.add_scatter(x=freqs, y=row[freqs].to_numpy(dtype=float), mode="lines",
                        name=f"{label} ({int(row['n'])})", line=dict(color=color, width=2),
                        hovertemplate="%{x:.0f} Hz: %{y:.1f} dB<extra>" + label + "</extra>")
    fig.update_layout(xaxis_title="frequency (Hz, mel bands)", xaxis_type="log",
                      yaxis_title="dB re each clip's loudest band" if relative
                      else "dB re full scale")
    return fig


# ------------------------------------------------------------------ cross-corpus scores

def _cells_by_corpus(cells) -> dict:
    return {c.corpus: c for c in cells}


def _test_corpora(rows: dict[str, list]) -> list[str]:
    return list(dict.fromkeys(c.corpus for cells in rows.values() for c in cells))


def crosscorpus_matrix(rows: dict[str, list], names: dict[str, str] | None = None
                       ) -> go.Figure:
    """Heatmap of UAR: models (rows) × test corpora (columns).

    ``rows`` maps a row label (model and its training data) to its
    :class:`ser.crosscorpus.Cell` list. Each cell shows the UAR and whether the corpus was
    unseen in training or only its held-out speakers were scored; ⚠ marks a cell where one
    label took at least :data:`COLLAPSE_SHARE` of the predictions.
    """
    names = names or {}
    corpora = _test_corpora(rows)
    labels = list(rows)
    z, text, hover = [], [], []
    for label in labels:
        by = _cells_by_corpus(rows[label])
        zr, tr, hr = [], [], []
        for key in corpora:
            c = by.get(key)
            if c is None:
                zr.append(None)
                tr.append("")
                hr.append("not scored")
                continue
            flag = " ⚠" if c.top_share >= COLLAPSE_SHARE else ""
            kind = "held-out speakers" if c.kind != "unseen" else "unseen"
            if getattr(c, "enrol", 0):
                kind += f", {c.enrol} enrolment clips/speaker"
            zr.append(c.uar)
            tr.append(f"<b>{c.uar:.0%}</b>{flag}<br><span style='font-size:10px'>{kind}"
                      "</span>")
            hr.append(f"UAR {c.uar:.1%}, accuracy {c.accuracy:.1%} on {c.n:,} clips ({kind});"
                      f"<br>most predicted: {c.top_label} {c.top_share:.0%} of clips")
        z.append(zr)
        text.append(tr)
        hover.append(hr)
    fig = _fig("Cross-corpus UAR (chance = 1/6 ≈ 17 %)", height=140 + 46 * len(labels))
    fig.add_heatmap(z=z, x=[names.get(k, k) for k in corpora], y=labels, text=text,
                    texttemplate="%{text}", customdata=hover,
                    colorscale=safe_scale("RdYlGn"), zmin=0,
                    zmax=1, colorbar=dict(title="UAR", tickformat=".0%"),
                    hovertemplate="%{y} on %{x}:<br>%{customdata}<extra></extra>",
                    xgap=2, ygap=2)
    fig.update_layout(xaxis_title="test corpus", yaxis=dict(autorange="reversed",
                                                            automargin=True),
                      xaxis=dict(side="top"))
    _set_margin(fig, l=20, r=20, t=90, b=30)
    return fig


def crosscorpus_recall(cells: list, names: dict[str, str] | None = None, title: str = ""
                       ) -> go.Figure:
    """Heatmap: test corpora (rows) × emotions (columns) → recall of one model."""
    names = names or {}
    corpora = [c.corpus for c in cells]
    z = [[c.recall.get(e) for e in config.LABELS] for c in cells]
    text = [["–" if v is None else f"{v:.0%}" for v in r] for r in z]
    fig = _fig(title or "Recall per emotion on each test corpus",
               height=130 + 40 * len(cells))
    fig.add_heatmap(z=z, x=list(config.LABELS),
                    y=[f"{names.get(k, k)} ({c.kind})" for k, c in zip(corpora, cells)],
                    text=text, texttemplate="%{text}", colorscale=safe_scale("Viridis"),
                    zmin=0, zmax=1,
                    colorbar=dict(title="recall", tickformat=".0%"),
                    hovertemplate="%{y}, %{x}: recall %{text}<extra></extra>")
    fig.update_layout(yaxis=dict(autorange="reversed", automargin=True))
    _set_margin(fig, l=20, r=20, t=50, b=40)
    return fig


def predicted_share_bars(cells: list, names: dict[str, str] | None = None, title: str = ""
                         ) -> go.Figure:
    """Stacked 100 % bars: the share of each test corpus's clips given each label.

    Segments are sorted largest first, so the first segment is the most predicted label:
    in a balanced model it ends near the 1/6 line; past the 35 % line the model has
    collapsed onto that label for this corpus (flagged ⚠ beside the bar).
    """
    names = names or {}
    ylab = [f"{names.get(c.corpus, c.corpus)} ({c.kind})" for c in cells]
    ranked = [sorted(((c.predicted_share.get(e, 0.0), e) for e in config.LABELS),
                     reverse=True) for c in cells]
    fig = _fig(title or "Predicted labels on each test corpus (share of its clips)",
               barmode="stack", height=170 + 44 * len(cells))
    for r in range(len(config.LABELS)):
        shares = [rk[r][0] for rk in ranked]
        labs = [rk[r][1] for rk in ranked]
        fig.add_bar(x=shares, y=ylab, orientation="h", showlegend=False,
                    marker=dict(color=[EMOTION_COLORS[lab] for lab in labs],
                                line=dict(color="white", width=1)),
                    text=[f"{lab} {s:.0%}" if s >= 0.06 else "" for s, lab in zip(shares, labs)],
                    textposition="inside", insidetextanchor="middle", customdata=labs,
                    hovertemplate="%{y}: %{customdata} %{x:.1%}<extra></extra>")
    for e in config.LABELS:  # legend entries: one per emotion colour
        fig.add_bar(x=[None], y=[None], orientation="h", name=e,
                    marker_color=EMOTION_COLORS[e])
    for x, color, label, where in (
            (1 / 6, "#343a40", "1/6 = balanced", "top left"),
            (COLLAPSE_SHARE, "#d62828", f"{COLLAPSE_SHARE:.0%} = collapse", "top right")):
        fig.add_vline(x=x, line=dict(color=color, width=2, dash="dash"),
                      annotation_text=label, annotation_position=where,
                      annotation_font_color=color)
    for y, c in zip(ylab, cells):
        if c.top_share >= COLLAPSE_SHARE:
            fig.add_annotation(x=1.0, y=y, xanchor="left", showarrow=False,
                               text=f" ⚠ {c.top_share:.0%} {c.top_label}",
                               font=dict(color="#d62828"))
    fig.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%", title="share of clips"),
                      yaxis=dict(autorange="reversed", automargin=True),
                      legend=dict(orientation="h", y=-0.25))
    _set_margin(fig, l=20, r=120, t=70, b=40)
    return fig


# ------------------------------------------------------------------------ calibration, timeline

def _curve_ece(curve: dict) -> float | None:
    count = np.asarray(curve["count"], dtype=np.float64)
    if count.sum() == 0:
        return None
    gap = np.abs(np.asarray(curve["accuracy"], dtype=np.float64)
                 - np.asarray(curve["confidence"], dtype=np.float64))
    return float(np.sum(np.where(count > 0, count * np.nan_to_num(gap), 0.0)) / count.sum())


def reliability_diagram(curves: dict[str, dict], title: str = "Reliability diagram"
                        ) -> go.Figure:
    """Accuracy against confidence for one or more ``ser.calibration.reliability_curve``
    dicts (legend name → curve), with each curve's ECE in the legend and the diagonal of
    perfect calibration. Marker size follows the number of predictions in the bin; empty
    bins are left out. ``ser.calibration.reliability_for(entry)["curves"]`` fits as is."""
    palette = ["#d62828", "#277da1", "#6a994e", "#7b2cbf", "#f4a261", "#8d99ae"]
    fig = _fig(title, height=380)
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                    line=dict(color="#adb5bd", dash="dash", width=1))
    for i, (name, c) in enumerate(curves.items()):
        count = np.asarray(c["count"])
        keep = count > 0
        conf = np.asarray(c["confidence"], dtype=np.float64)[keep]
        acc = np.asarray(c["accuracy"], dtype=np.float64)[keep]
        n = count[keep]
        ece = _curve_ece(c)
        size = 6 + 18 * np.sqrt(n / n.max()) if len(n) else []
        fig.add_scatter(x=conf, y=acc, mode="lines+markers", customdata=n,
                        name=name + (f" (ECE {ece:.3f})" if ece is not None else ""),
                        line=dict(color=palette[i % len(palette)], width=2),
                        marker=dict(size=size),
                        hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>"
                                      "%{customdata} predictions<extra></extra>")
    fig.update_layout(xaxis=dict(range=[0, 1], title="confidence (top probability)",
                                 tickformat=".0%"),
                      yaxis=dict(range=[0, 1], title="accuracy", tickformat=".0%"),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def segment_timeline(y: np.ndarray, sr: int, timeline: pd.DataFrame,
                     threshold: float | None = None,
                     title: str = "Emotion timeline (speech segments)") -> go.Figure:
    """The waveform with each scored segment shaded in its emotion's colour (grey when
    uncertain), and below it each segment's calibrated confidence as a bar as wide as the
    segment, with the "uncertain" threshold. ``timeline`` is
    ``ser.inference.ClipAnalysis.table()``."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        row_heights=[0.55, 0.45])
    fig.update_layout(**_layout(title, height=460))
    t, v = envelope(y, sr)
    fig.add_scatter(x=t, y=v, mode="lines", line=dict(width=1, color="#4361ee"),
                    name="waveform", showlegend=False, hoverinfo="skip", row=1, col=1)
    label_each = len(timeline) <= 40
    top = max(float(np.max(np.abs(y))) * 1.1 if len(y) else 0.0, 1e-3)  # follow the peak
    for r in timeline.itertuples():
        colour = "#adb5bd" if r.uncertain else EMOTION_COLORS[r.emotion]
        fig.add_vrect(x0=r.start_s, x1=r.end_s, fillcolor=colour, opacity=0.3, line_width=0,
                      row=1, col=1)
        if label_each:
            text = "?" if r.uncertain else f"{r.emotion} {r.confidence:.0%}"
            fig.add_annotation(x=(r.start_s + r.end_s) / 2, y=top, text=text,
                               showarrow=False, yanchor="bottom", font=dict(size=10),
                               row=1, col=1)
    mid = ((timeline["start_s"] + timeline["end_s"]) / 2).to_numpy()
    unsure = timeline["uncertain"].to_numpy(dtype=bool)
    groups = [(e, EMOTION_COLORS[e], (timeline["emotion"] == e).to_numpy() & ~unsure)
              for e in config.LABELS] + [("uncertain", "#adb5bd", unsure)]
    for name, colour, rows in groups:
        if not rows.any():
            continue
        sub = timeline[rows]
        fig.add_bar(x=mid[rows], y=sub["confidence"], width=sub["duration_s"], name=name,
                    marker_color=colour, marker_line_width=0,
                    customdata=np.stack([sub["segment"], sub["emotion"], sub["runner_up"],
                                         sub["runner_up_confidence"]], axis=1),
                    hovertemplate="segment %{customdata[0]}: %{customdata[1]} %{y:.0%}, "
                                  "next %{customdata[2]} %{customdata[3]:.0%}<extra></extra>",
                    row=2, col=1)
    if threshold is not None:
        fig.add_hline(y=threshold, line=dict(color="#343a40", dash="dot", width=1),
                      annotation_text=f"uncertain below {threshold:.0%}",
                      annotation_position="top left", row=2, col=1)
    fig.update_layout(barmode="overlay", bargap=0, legend=dict(orientation="h", y=-0.15))
    fig.update_yaxes(range=[-top, top * 1.3], title_text="amplitude", row=1, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text="confidence", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    # the clip's own span: bars with their own widths made plotly's autorange start at -5 s
    fig.update_xaxes(range=[0, max(len(y) / sr, 1e-3)])
    return fig


def study_chart(rep: dict, metric: str = "test_accuracy", title: str = "") -> go.Figure:
    """A study's cells: mean over seeds (bar) ± one standard deviation (error bar), each
    seed's own figure (dots) and the seed write-up's figure where it reports one (diamond).
    Cells with fewer than two finished seeds are drawn pale and say so."""
    cells = rep.get("cells") or []
    labels = [c["label"] for c in cells]
    means = [(c[metric]["mean"] or 0) * 100 for c in cells]
    stds = [(c[metric]["std"] or 0) * 100 for c in cells]
    complete = [c["complete"] for c in cells]
    fig = go.Figure()
    fig.add_bar(x=labels, y=means, name="mean over seeds",
                marker_color=["#277da1" if ok else "#c9d6df" for ok in complete],
                error_y=dict(type="data", array=stds, visible=True),
                text=[f"{m:.1f}" if c["n_seeds"] else "" for m, c in zip(means, cells)],
                textposition="inside",
                customdata=[[c["n_seeds"], s] for c, s in zip(cells, stds)],
                hovertemplate="%{x}<br>mean %{y:.1f} % ± %{customdata[1]:.1f}"
                              "<br>%{customdata[0]} seed(s)<extra></extra>")
    xs, ys = [], []
    for c in cells:
        for v in c[metric]["values"]:
            xs.append(c["label"])
            ys.append(v * 100)
    if xs:
        fig.add_scatter(x=xs, y=ys, mode="markers", name="one seed",
                        marker=dict(color="#1d3557", size=7, symbol="circle-open"),
                        hovertemplate="%{x}<br>%{y:.1f} %<extra>one seed</extra>")
    reported = [(c["label"], c["seed_reported"] * 100) for c in cells
                if c.get("seed_reported") is not None]
    if reported:
        fig.add_scatter(x=[r[0] for r in reported], y=[r[1] for r in reported],
                        mode="markers", name="seed write-up",
                        marker=dict(color="#d62828", size=11, symbol="diamond"),
                        hovertemplate="%{x}<br>seed write-up: %{y:.1f} %<extra></extra>")
    fig.update_layout(**_layout(title), barmode="overlay",
                      legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title=f"{metric.replace('_', ' ').replace('uar', 'UAR')} (%)",
                     rangemode="tozero")
    return fig
