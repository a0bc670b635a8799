"""Figures for the views inside the models (`ser.insight`): Grad-CAM on the spectrogram,
FS1 attributions by family, feature-map grids and receptive fields. No Streamlit here.

Every image goes through `ser.plots.display_resolution`, so a figure stays light whatever
the input size; spectrograms keep the app's scale (`ser.plots.SPECTROGRAM_SCALE`, silence
dark, colour bar in dB).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ser import config
from ser.plots import SPECTROGRAM_SCALE, _fig, _layout, _set_margin, display_resolution, safe_scale

#: Grad-CAM drawn over the spectrogram: transparent where the model does not look, a
#: bright cyan veil (distinct from every Magma colour) where it does.
CAM_SCALE = [[0.0, "rgba(0,255,255,0)"], [0.3, "rgba(0,255,255,0)"],
             [0.6, "rgba(0,255,255,0.35)"], [1.0, "rgba(0,255,255,0.75)"]]
RF_COLOR = "rgb(0,255,255)"
FAMILY_PALETTE = {"ZCR": "#264653", "RMS": "#2a9d8f", "MFCC": "#e9c46a", "chroma": "#f4a261",
                  "contrast": "#e76f51", "mel": "#4361ee"}


def _axes(frames: int, n_mels: int, seconds_per_frame: float, start_s: float = 0.0):
    return start_s + np.arange(frames) * seconds_per_frame, np.arange(n_mels)


def _spectrogram(fig: go.Figure, spec: np.ndarray, t: np.ndarray, f: np.ndarray,
                 colorbar_x: float = 1.0) -> None:
    z, x, y = display_resolution(spec, (t, f))
    fig.add_heatmap(z=z, x=x, y=y, colorscale=safe_scale(SPECTROGRAM_SCALE), zmin=-80, zmax=0,
                    colorbar=dict(title=dict(text="dB re max", side="right"), x=colorbar_x,
                                  len=0.9),
                    hovertemplate="%{x:.2f} s, band %{y:.0f}: %{z:.1f} dB<extra></extra>")


def gradcam_overlay(spec: np.ndarray, cam: np.ndarray, *, seconds_per_frame: float,
                    start_s: float = 0.0, title: str = "", height: int = 390) -> go.Figure:
    """The window's log-mel image with the Grad-CAM map (0–1) as a translucent veil."""
    t, f = _axes(spec.shape[1], spec.shape[0], seconds_per_frame, start_s)
    fig = _fig(title, height=height)
    _spectrogram(fig, spec, t, f)
    z, x, y = display_resolution(cam, (t, f))
    fig.add_heatmap(z=z, x=x, y=y, colorscale=CAM_SCALE, zmin=0, zmax=1,
                    # at the foot of the figure: a colour bar in the top margin made
                    # Plotly set the title at the very top, under its toolbar
                    colorbar=dict(title=dict(text="Grad-CAM", side="top"),
                                  orientation="h", x=1.0, xanchor="right", y=-0.3,
                                  yanchor="top", len=0.45, thickness=10,
                                  tickvals=[0, 0.5, 1]),
                    hovertemplate="%{x:.2f} s, band %{y:.0f}: Grad-CAM %{z:.2f}"
                                  "<extra></extra>")
    fig.update_layout(xaxis_title="time (s)", yaxis_title="mel band")
    _set_margin(fig, l=50, r=20, t=50, b=100)  # the veil's colour bar under the axis
    return fig


def fs1_family_bars(families: dict[str, float], shares: dict[str, float], *,
                    title: str = "", height: int = 300) -> go.Figure:
    """One bar per FS1 family: the sum of its values' attributions (logit units; positive =
    towards the explained emotion), with its share of the total absolute attribution."""
    names = list(families)
    vals = [families[n] for n in names]
    fig = _fig(title, height=height)
    fig.add_bar(x=names, y=vals, marker_color=[FAMILY_PALETTE.get(n, "#888") for n in names],
                text=[f"{shares[n]:.0%}" for n in names], textposition="outside",
                customdata=[shares[n] for n in names],
                hovertemplate="%{x}: %{y:+.3f} (share of |attribution| %{customdata:.0%})"
                              "<extra></extra>")
    fig.add_hline(y=0, line_color="#444", line_width=1)
    fig.update_layout(yaxis_title="attribution (logit)", xaxis_title="FS1 family",
                      showlegend=False)
    return fig


def fs1_value_bars(values: np.ndarray, spans: dict[str, tuple[int, int]], *,
                   title: str = "", height: int = 260) -> go.Figure:
    """Every FS1 value's attribution, coloured by family."""
    fig = _fig(title, height=height)
    for name, (a, b) in spans.items():
        fig.add_bar(x=np.arange(a, b), y=values[a:b], name=name,
                    marker_color=FAMILY_PALETTE.get(name, "#888"),
                    hovertemplate="value %{x}: %{y:+.4f}<extra>" + name + "</extra>")
    fig.update_layout(xaxis_title="FS1 value", yaxis_title="attribution (logit)", bargap=0)
    return fig


def feature_map_grid(maps: np.ndarray, channels: list[int], energy: list[float], *,
                     centres=None, seconds_per_frame: float = config.HOP_LENGTH /
                     config.SAMPLE_RATE, columns: int = 4, time_axis: bool = True,
                     title: str = "") -> go.Figure:
    """Small multiples: one image per channel (2D maps) or one row per channel (1D maps),
    each on its own colour scale (viridis), axes at the input positions the cells stand for
    when ``centres`` = (rows, columns) from `ser.insight.Inspector.centres` is given.
    ``time_axis``: a 1D map runs along time (a spectrogram model's late layers), in
    seconds; False: along the FS1 values."""
    from plotly.subplots import make_subplots

    maps = np.asarray(maps, dtype=np.float32)
    rows_c, cols_c = centres if centres is not None else (None, None)
    if maps.ndim == 2:  # 1D maps: a heatmap with one row per channel
        x = cols_c if cols_c is not None else np.arange(maps.shape[1])
        if time_axis:
            x = np.asarray(x) * seconds_per_frame
        fig = _fig(title, height=max(220, 28 * len(maps) + 90))
        scaled = maps / np.maximum(np.abs(maps).max(axis=1, keepdims=True), 1e-12)
        fig.add_heatmap(z=scaled, x=x, y=[f"ch {c}" for c in channels],
                        colorscale=safe_scale("Viridis"), customdata=maps,
                        colorbar=dict(title=dict(text="÷ row max", side="right")),
                        hovertemplate="%{y}, %{x:.2f}: %{customdata:.3g}<extra></extra>")
        fig.update_layout(xaxis_title="time (s)" if time_axis else "FS1 value",
                          yaxis=dict(autorange="reversed"))
        return fig
    n = len(maps)
    cols = min(columns, n)
    nrows = -(-n // cols)
    fig = make_subplots(rows=nrows, cols=cols, horizontal_spacing=0.03,
                        vertical_spacing=0.12 if nrows > 1 else 0.05,
                        subplot_titles=[f"ch {c} · energy {e:.3g}"
                                        for c, e in zip(channels, energy)])
    for i, m in enumerate(maps):
        x = (cols_c * seconds_per_frame) if cols_c is not None else np.arange(m.shape[1])
        y = rows_c if rows_c is not None else np.arange(m.shape[0])
        z, xs, ys = display_resolution(m, (x, y), rows=64, cols=160)
        fig.add_heatmap(z=z, x=xs, y=ys, colorscale=safe_scale("Viridis"), showscale=False,
                        row=i // cols + 1, col=i % cols + 1,
                        hovertemplate="%{x:.2f} s, band %{y:.0f}: %{z:.3g}<extra>ch "
                                      f"{channels[i]}</extra>")
    fig.update_layout(**_layout(title, height=170 * nrows + 70), template="plotly_white")
    _set_margin(fig, l=40, r=20, t=70, b=30)  # room for the first row's titles
    fig.update_annotations(font_size=11)
    for c in range(2, cols + 1):  # one set of band labels per row
        fig.update_yaxes(showticklabels=False, col=c)
    return fig


def receptive_field_overlay(spec: np.ndarray | None, rf, *, seconds_per_frame: float,
                            start_s: float = 0.0, title: str = "",
                            height: int = 330) -> go.Figure:
    """The receptive field of one unit (`ser.insight.ReceptiveField`) drawn on the
    spectrogram: its rectangle, and the effective field (|gradient| on this clip) as
    contours. For an FS1 unit: the span of values it reads, over the effective field."""
    fig = _fig(title, height=height)
    (r0, r1), (c0, c1) = rf.rows, rf.cols
    if rf.space == "fs1" or spec is None:
        eff = rf.effective[0]
        fig.add_bar(x=np.arange(len(eff)), y=eff, marker_color="#4361ee", name="|gradient|",
                    hovertemplate="value %{x}: %{y:.3f}<extra></extra>")
        fig.add_vrect(x0=c0 - 0.5, x1=c1 + 0.5, line_color="#e76f51", line_width=2,
                      fillcolor="rgba(231,111,81,0.12)")
        fig.update_layout(xaxis_title="FS1 value", yaxis_title="|d unit / d input| (÷ max)",
                          showlegend=False)
        return fig
    t, f = _axes(spec.shape[1], spec.shape[0], seconds_per_frame, start_s)
    _spectrogram(fig, spec, t, f)
    z, x, y = display_resolution(rf.effective, (t, f))
    fig.add_contour(z=z, x=x, y=y, showscale=False, contours=dict(
        coloring="lines", start=0.1, end=0.9, size=0.4), line=dict(width=1.2),
        colorscale=[[0, "rgb(255,255,255)"], [1, "rgb(255,255,255)"]],
        hoverinfo="skip", name="effective field")
    dt = seconds_per_frame
    fig.add_shape(type="rect", x0=start_s + (c0 - 0.5) * dt, x1=start_s + (c1 + 0.5) * dt,
                  y0=r0 - 0.5, y1=r1 + 0.5, line=dict(color=RF_COLOR, width=2))
    fig.update_layout(xaxis_title="time (s)", yaxis_title="mel band",
                      xaxis_range=[t[0] - dt / 2, t[-1] + dt / 2],
                      yaxis_range=[-0.5, spec.shape[0] - 0.5])
    return fig
