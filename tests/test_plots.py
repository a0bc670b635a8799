"""Figures as the browser receives them: colours, scales, axes (no Streamlit here)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import tone

from ser import config, plots

# Streamlit's chart theme replaces these colours with its own palette (its placeholders).
PLACEHOLDER = re.compile(r"#0000[0-4][0-9]\b", re.IGNORECASE)


def _rgb(color: str) -> tuple[int, int, int]:
    from plotly.colors import hex_to_rgb, unlabel_rgb

    return tuple(int(v) for v in (hex_to_rgb(color) if color.startswith("#")
                                  else unlabel_rgb(color)))


def _luminance(color: str) -> float:
    r, g, b = _rgb(color)
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def _clip_with_silence() -> np.ndarray:
    y = tone(1.0, sr=config.SAMPLE_RATE)
    return np.concatenate([np.zeros(config.SAMPLE_RATE // 2, np.float32), y,
                           np.zeros(config.SAMPLE_RATE // 2, np.float32)])


def _figures():
    from ser.features import clip_features

    y = _clip_with_silence()
    fs2 = clip_features(y)["fs2"]
    cm = np.eye(6) * 10 + 1
    return {
        "stft": plots.stft_spectrogram(y, config.SAMPLE_RATE),
        "mel": plots.mel_image(fs2),
        "mfcc": plots.mfcc_image(y, config.SAMPLE_RATE),
        "confusion": plots.confusion(cm.tolist()),
        "per_class_f1": plots.per_class_f1({"m": {e: {"f1": 0.5} for e in config.LABELS}}),
    }


@pytest.fixture(scope="module")
def figures():
    return _figures()


def test_no_figure_carries_a_streamlit_placeholder_colour(figures):
    """Regression: Magma's darkest colour is #000004, which Streamlit's theme swapped for
    bright pink, so silence (−80 dB) looked like the loudest thing in the picture."""
    for name, fig in figures.items():
        spec = fig.to_plotly_json()
        # The template is left out: in the app Plotly's default template is Streamlit's own,
        # whose placeholders are meant to be replaced by its theme; the figure's own colours
        # (scales, emotion colours) must not be placeholders.
        spec["layout"].pop("template", None)
        text = json.dumps(spec, default=str)
        assert not PLACEHOLDER.search(text), f"{name}: {PLACEHOLDER.search(text).group()}"


@pytest.mark.parametrize("name", ["stft", "mel"])
def test_spectrogram_silence_is_dark_and_the_colour_bar_says_db(figures, name):
    trace = figures[name].data[0]
    scale = [c for _, c in trace.colorscale]
    assert trace.zmin == -80 and trace.zmax == 0
    assert _luminance(scale[0]) < 0.05, "silence (zmin) must be near black"
    assert _luminance(scale[-1]) > 0.8, "loud (zmax) must be bright"
    lum = [_luminance(c) for c in scale]
    assert lum == sorted(lum), "lightness must rise monotonically (perceptually uniform)"
    assert "dB" in trace.colorbar.title.text
    # The silent half-second at the start is at the bottom of the scale.
    z = np.asarray(trace.z)
    assert np.median(z[:, :5]) <= -79


def test_spectrograms_are_sent_at_display_resolution(figures):
    z = np.asarray(figures["stft"].data[0].z)
    assert z.shape[0] <= plots.DISPLAY_ROWS and z.shape[1] <= plots.DISPLAY_COLS
    assert len(figures["stft"].data[0].y) == z.shape[0]
    long = np.full((128, 5000), -80.0)
    long[10, 2500] = 0.0  # one loud cell survives the shrinking (block maximum)
    small, x, _ = plots.display_resolution(long, (np.arange(5000), None))
    assert small.shape[1] <= plots.DISPLAY_COLS and small.max() == 0.0
    assert len(x) == small.shape[1]


# ------------------------------------------------------------------ smaller fixes (item 10)

def test_waveform_axis_follows_a_quiet_clips_peak():
    quiet = tone(1.0, sr=16000, amp=0.02)
    fig = plots.waveform(quiet, 16000)
    lo, hi = fig.layout.yaxis.range
    peak = float(np.max(np.abs(quiet)))
    assert hi == pytest.approx(1.1 * peak) and lo == -hi
    assert "dBFS" in fig.layout.title.text


def test_intensity_reads_low_medium_high():
    import pandas as pd

    m = pd.DataFrame({"intensity": ["high", "low", "medium", "unspecified", "low"],
                      "emotion": ["angry", "sad", "happy", "fear", "sad"]})
    fig = plots.stacked_counts(m, "intensity", "Clips per intensity level")
    assert list(fig.data[0].x) == ["low", "medium", "high", "unspecified"]


def test_duration_chart_keeps_the_emotions_apart():
    import pandas as pd

    m = pd.DataFrame({"emotion": list(config.LABELS) * 3,
                      "duration_s": np.linspace(1.5, 4.0, 18)})
    fig = plots.duration_histogram(m)
    assert [t.type for t in fig.data] == ["box"] * 6
    assert [t.name for t in fig.data] == list(config.LABELS)


def test_ser2d_diagram_shows_residual_skips_and_attention_pooling():
    from ser.models import describe

    texts = [a.text for a in plots.architecture_diagram(describe("ser2d")["layers"])
             .layout.annotations]
    assert sum(t.startswith("Residual block") for t in texts) == 5
    assert sum("skip" in t for t in texts) == 5
    assert any(t.startswith("Attention pooling") for t in texts)
    plain = [a.text for a in plots.architecture_diagram(describe("lenet2d")["layers"])
             .layout.annotations]
    assert not any("skip" in t or "Attention" in t for t in plain)


def test_diagram_labels_stay_readable_past_a_narrow_box():
    # Regression: in a half-width column long labels (residual blocks, attention pooling)
    # ran white-on-white beyond their box, and BatchNorm's light box had white text.
    from ser.models import describe

    fig = plots.architecture_diagram(describe("ser2d")["layers"])
    boxes = [sh.fillcolor for sh in fig.layout.shapes if sh.type == "rect"]
    labels = [a for a in fig.layout.annotations if "skip" not in a.text]
    assert len(boxes) == len(labels)
    for box, label in zip(boxes, labels):
        assert label.bgcolor == box  # the label carries its box's colour
        assert label.hovertext  # the full description
    norm = next(a for a in labels if a.text.startswith("BatchNorm2d"))
    assert norm.font.color != "white"
    assert not any("," + ")" in a.text for a in labels)  # "6", not "(6,)"


def test_waveform_envelope_is_light_and_keeps_the_peaks():
    y = tone(10.0, sr=16000) * np.linspace(0, 1, 160000, dtype=np.float32)
    t, v = plots.envelope(y, 16000)
    assert len(v) <= 3000 and len(t) == len(v)
    assert v.max() == pytest.approx(y.max()) and v.min() == pytest.approx(y.min())
    assert t[-1] < 10.0


def test_slices_by_intensity_read_low_to_high():
    sl = {"m": {"intensity": {k: {"accuracy": 0.5} for k in ("high", "low", "medium")}}}
    assert list(plots.slice_bars(sl, "intensity").data[0].x) == ["low", "medium", "high"]


def test_training_curves_show_the_corpus_adversary_only_when_there_is_one():
    ep = [{"type": "epoch", "epoch": k, "train_loss": 1.0, "val_loss": 1.1,
           "train_accuracy": 0.5, "val_accuracy": 0.4, "val_uar": 0.4} for k in (1, 2)]
    names = [t.name for t in plots.training_curves(ep, epochs=2).data]
    assert not any("corpus" in n for n in names)
    adv = [{**e, "train_corpus_acc": a} for e, a in zip(ep, (0.9, 0.3), strict=True)]
    trace = next(t for t in plots.training_curves(adv, epochs=2).data if "corpus" in t.name)
    assert list(trace.y) == [0.9, 0.3] and list(trace.x) == [1, 2]


def test_model_heatmap_leaves_its_columns_room_on_a_phone():
    """Regressions: with the Predict page's default (one model) the heatmap was 140 px high
    and its colour bar's 0 % and 100 % labels were drawn on top of each other; on a phone,
    with the shipped ensemble, the 13 names and the colour bar left the six columns 60 px.
    Each cell prints its probability, so there is no colour bar; a long name takes two
    lines on the axis and stays whole in the hover."""
    from ser.plots import model_probabilities, name_lines

    rng = np.random.default_rng(0)
    for rows in (1, 2, 3, 13):
        p = rng.dirichlet(np.ones(6), size=rows)
        fig = model_probabilities([f"m{i}" for i in range(rows)], p)
        assert fig.data[0].showscale is False
        assert all("%" in t for row in fig.data[0].text for t in row)
    long = ["ser2d.crema-si-pitch-stretch-x3", "voicelin.pool4-spk"]
    fig = model_probabilities(long, rng.dirichlet(np.ones(6), size=2), ["test 65.5 %", ""])
    assert list(fig.data[0].y) == ["ser2d.crema-si-<br>pitch-stretch-x3", "voicelin.pool4-spk"]
    assert fig.data[0].customdata[0][0] == ["ser2d.crema-si-pitch-stretch-x3", "test 65.5 %"]
    assert name_lines("ser2dcremasipitchstretchx3") == "ser2dcremasipitchstretchx3"
    # Results' per-class F1 heatmap is laid out the same way, and its slice bars put the
    # legend of run names under the bars
    f1 = plots.per_class_f1({n: {e: {"f1": 0.5} for e in config.LABELS} for n in long})
    assert f1.data[0].showscale is False and "<br>" in f1.data[0].y[0]
    sl = {n: {"intensity": {"low": {"accuracy": 0.5}}} for n in long}
    legend = plots.slice_bars(sl, "intensity").layout.legend
    assert legend.orientation == "h" and legend.y < 0


def test_segment_timeline_spans_the_clip_not_negative_time():
    """Regression: the confidence bars (each as wide as its segment) made the shared time
    axis start at -5 s on a 14-s memo. The axis is the clip's own span."""
    from ser.plots import segment_timeline

    sr = 16000
    y = tone(14.5, sr)
    rows = []
    for i, (a, b, e) in enumerate([(0.38, 1.06, "happy"), (1.4, 5.35, "neutral"),
                                   (6.62, 10.12, "angry"), (11.26, 14.31, "neutral")]):
        p = {lab: 0.1 for lab in config.LABELS}
        p[e] = 0.5
        rows.append({"segment": i + 1, "start_s": a, "end_s": b, "duration_s": b - a,
                     "emotion": e, "confidence": 0.5, "uncertain": i % 2 == 0,
                     "runner_up": "sad", "runner_up_confidence": 0.1, "agreement": 1.0,
                     **{f"p_{k}": v for k, v in p.items()}})
    fig = segment_timeline(y, sr, pd.DataFrame(rows), threshold=0.45)
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        assert tuple(axis.range) == (0, 14.5)


def test_a_pools_hundred_speakers_are_bars_without_a_smear_of_labels():
    """The five-corpus pool has 132 speakers: their names ran into each other under the
    bars. Above 60 bars the labels go (hover names each bar) and the axis says how many."""
    from ser.plots import MAX_TICK_LABELS, stacked_counts

    def manifest(n):
        return pd.DataFrame({"speaker": [f"c:{i:03d}" for i in range(n) for _ in range(6)],
                             "emotion": list(config.LABELS) * n})

    few = stacked_counts(manifest(12), "speaker", "Clips per speaker")
    assert few.layout.xaxis.showticklabels is not False
    many = stacked_counts(manifest(MAX_TICK_LABELS + 72), "speaker", "Clips per speaker")
    assert many.layout.xaxis.showticklabels is False
    assert many.layout.xaxis.title.text.startswith("132 speakers")
    assert len(many.data[0].x) == 132


def test_long_titles_wrap_to_a_phone_width_and_keep_the_plot_height():
    """Regression: Plotly never wraps a title, so on a phone a long one ran off the chart.
    Titles are broken into lines of at most TITLE_CHARS characters (a <sup> subtitle keeps
    its tags on each line), and the figure grows by the extra lines so the plot keeps its
    height (a phone-width browser check is in test_browser.py)."""
    long = "Probabilities (calibrated), speech only, weighted by duration"
    lines = plots.title_lines(long + "<br><sup>" + "speaker-independent split " * 4 + "</sup>")
    assert lines[:2] == ["Probabilities (calibrated), speech only,", "weighted by duration"]
    assert all(line.startswith("<sup>") and line.endswith("</sup>") for line in lines[2:])
    assert all(len(line) <= plots.TITLE_CHARS for line in lines[:2])
    assert plots.title_lines("Clips per emotion") == ["Clips per emotion"]

    probs = np.full(6, 1 / 6)
    short, wrapped = (plots.probability_bars(probs, t) for t in ("Probabilities", long))
    plot_height = [f.layout.height - f.layout.margin.t - f.layout.margin.b
                   for f in (short, wrapped)]
    assert plot_height[0] == plot_height[1]
    assert wrapped.layout.margin.t > short.layout.margin.t >= plots.TOOLBAR_PX
    assert wrapped.layout.title.text.count("<br>") == 1
    untitled = plots.probability_bars(probs)
    assert untitled.layout.margin.t == 40 and not untitled.layout.title.text


def test_training_curves_fit_a_phone():
    """Regression: on a phone the live training curves were two 60-px panels beside a
    legend, their 11 epoch labels run together and the panel titles overlapping. The
    legend now sits under the panels and each epoch axis has at most 6 labels."""
    ep = [{"type": "epoch", "epoch": e, "train_loss": 1.0, "val_loss": 1.1,
           "train_accuracy": 0.5, "val_accuracy": 0.4, "val_uar": 0.4} for e in (1, 2, 3)]
    fig = plots.training_curves(ep, epochs=60)
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0
    assert all(60 / ax.dtick <= 5 for ax in (fig.layout.xaxis, fig.layout.xaxis2))
    assert plots.training_curves(ep, epochs=3).layout.xaxis.dtick == 1  # whole epochs
    # the Results page's overlay of several runs: long run names, legend under the plot
    many = plots.overlaid_curves({f"ser2d.crema-si-pitch-stretch-x3-seed{i}": ep
                                  for i in range(3)})
    assert many.layout.legend.orientation == "h" and many.layout.legend.y < 0
