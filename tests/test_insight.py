"""Views inside the models (ser.insight, ser.plots_insight and the three pages that show them),
on tiny models trained here on the synthetic demo corpus and on its generated speech."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from app_helpers import open_page

from ser import config
from ser.inference import Predictor
from ser.insight import InsightError, Inspector, fs1_spans

#: Tiny runs: each architecture family the views must handle (1D, plain 2D, residual,
#: recurrent, two-input).
ARCHS = {"lenet1d": {}, "lenet2d": {"width": 0.25}, "ser2d": {"width": 0.25},
         "sercrnn": {"width": 0.25}, "combined": {"width": 0.25}}


@pytest.fixture(scope="module")
def trained(demo_root) -> dict[str, str]:
    """arch → bundle path of a finished run (3 epochs on 160 demo clips, in this process)."""
    from ser import runs
    from ser.recipe import TrainConfig

    out = {}
    for arch, kwargs in ARCHS.items():
        run_id = runs.create(TrainConfig(arch=arch, epochs=3, noise=False, max_clips=160,
                                         batch_size=32, threads=1, **kwargs))
        assert runs.execute(run_id) == 0, runs.log_tail(run_id, 30)
        out[arch] = str(runs.run_dir(run_id) / "model.pt")
    return out


@pytest.fixture(scope="module")
def clip(demo_root) -> tuple[np.ndarray, int]:
    """An angry demo utterance (a few seconds of synthetic speech)."""
    y, sr = sf.read(sorted(demo_root.rglob("*_ANG_*.wav"))[0], dtype="float32")
    assert 1.0 < len(y) / sr <= 5.0
    return y, sr


@pytest.fixture(scope="module")
def inspectors(trained) -> dict[str, Inspector]:
    return {arch: Inspector(Predictor(path)) for arch, path in trained.items()}


# ------------------------------------------------------------------ the prediction path

@pytest.mark.parametrize("arch", list(ARCHS))
def test_view_is_what_prediction_sees(arch, trained, inspectors, clip):
    y, sr = clip
    p = Predictor(trained[arch])
    view = inspectors[arch].view(y, sr)
    np.testing.assert_allclose(view.probs, p.predict_samples(y, sr).probs, atol=1e-5)
    arrays, _ = p.window_features(y, sr)
    for mine, theirs in zip(view.inputs, p.inputs(arrays)):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    if "fs2" in p.space:
        assert view.spectrogram.shape == (config.N_MELS, config.FS2_FRAMES)
        assert view.spectrogram.min() >= -80 and view.spectrogram.max() <= 0


# ------------------------------------------------------------------ where the model listens

@pytest.mark.parametrize("arch", ["lenet2d", "ser2d", "sercrnn", "combined"])
def test_gradcam_is_a_nonnegative_map_on_the_spectrogram(arch, inspectors, clip):
    ins = inspectors[arch]
    view = ins.view(*clip)
    default = ins.default_cam_layer
    assert default is not None and len(default.shape) == 3  # still has a frequency axis
    for layer in [default.name, ins.cam_layers[0].name]:
        for target in (None, "sad"):
            cam = ins.gradcam(view, layer, target)
            assert cam.cam.shape == (config.N_MELS, config.FS2_FRAMES)
            assert np.isfinite(cam.cam).all() and np.isfinite(cam.raw).all()
            assert cam.cam.min() >= 0 and cam.cam.max() <= 1
            assert cam.raw.min() >= 0
            assert cam.cam.max() == pytest.approx(1.0) or cam.peak == 0
    assert ins.gradcam(view).target == view.label


def test_gradcam_on_a_layer_without_frequency_axis_is_over_time(inspectors, clip):
    ins = inspectors["ser2d"]
    view = ins.view(*clip)
    late = [x for x in ins.cam_layers if len(x.shape) == 2]
    assert late, [x.label for x in ins.cam_layers]
    cam = ins.gradcam(view, late[-1].name)
    assert cam.time_only and cam.cam.shape == (config.N_MELS, config.FS2_FRAMES)
    assert np.allclose(cam.cam, cam.cam[:1])  # the same over every band


def test_gradcam_cells_sit_at_their_receptive_field_centres(inspectors):
    """lenet2d's unpadded 5×5 convolutions and 2× pools: cell 0 of the second conv's map
    reads input cells 0–13 (centre 6.5), and each next cell moves by 2 (the pool's stride)."""
    ins = inspectors["lenet2d"]
    conv2 = [x for x in ins.layers if x.kind == "conv"][1]
    rows, cols = ins.centres(conv2)
    assert rows[0] == pytest.approx(6.5) and cols[1] - cols[0] == pytest.approx(2)


@pytest.mark.parametrize("arch", ["lenet1d", "combined"])
def test_fs1_attribution_covers_every_value_and_adds_up(arch, inspectors, clip):
    ins = inspectors[arch]
    view = ins.view(*clip)
    a = ins.fs1_attribution(view)
    spans = fs1_spans(ins.cfg)
    assert list(spans) == ["ZCR", "RMS", "MFCC", "chroma", "contrast", "mel"]
    covered = np.concatenate([np.arange(*spans[k]) for k in spans])
    np.testing.assert_array_equal(covered, np.arange(config.FS1_DIM))
    assert a.values.shape == (config.FS1_DIM,) and np.isfinite(a.values).all()
    assert sum(a.families.values()) == pytest.approx(float(a.values.sum()), abs=1e-4)
    assert sum(a.shares.values()) == pytest.approx(1.0)
    # completeness of integrated gradients, up to the Riemann sum's error
    assert float(a.values.sum()) == pytest.approx(a.delta, abs=0.05 + 0.05 * abs(a.delta))


def test_attribute_gives_what_each_input_space_allows(inspectors, clip):
    both = inspectors["combined"].attribute(inspectors["combined"].view(*clip))
    assert both.cam is not None and both.fs1 is not None
    one = inspectors["lenet1d"].attribute(inspectors["lenet1d"].view(*clip))
    assert one.cam is None and one.fs1 is not None
    two = inspectors["ser2d"].attribute(inspectors["ser2d"].view(*clip))
    assert two.cam is not None and two.fs1 is None
    with pytest.raises(InsightError, match="FS1"):
        inspectors["ser2d"].fs1_attribution(inspectors["ser2d"].view(*clip))
    with pytest.raises(InsightError, match="no inspectable layer"):
        inspectors["ser2d"].gradcam(inspectors["ser2d"].view(*clip), "head.1")


def test_no_gradient_reaches_the_predictor(trained, clip):
    p = Predictor(trained["combined"])
    before = {k: v.clone() for k, v in p.model.state_dict().items()}
    ins = Inspector(p)
    view = ins.view(*clip)
    ins.attribute(view)
    layer = ins.cam_layers[0].name
    ins.receptive_field(view, layer)
    ins.feature_maps(view, layer)
    assert all(q.grad is None for q in p.model.parameters())
    assert all(q.grad is None for q in ins.model.parameters())
    assert torch.is_grad_enabled()
    for k, v in p.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not p.model.training
    # the predictor's own model carries no hook of ours
    assert not any(m._forward_hooks for m in p.model.modules())


def test_speaker_normalised_model_needs_a_voice(models_dir, clip):
    from predict_helpers import make_bundle

    from ser.inference import VoiceNeededError

    path = make_bundle(models_dir / "spk" / "model.pt", arch="lenet2d", speaker_norm=True)
    with pytest.raises(VoiceNeededError):
        Inspector(Predictor(path)).view(*clip)


# ------------------------------------------------------------------ what each layer computes

@pytest.mark.parametrize("arch", list(ARCHS))
def test_layers_and_strongest_feature_maps(arch, inspectors, clip):
    ins = inspectors[arch]
    assert ins.layers and {x.kind for x in ins.layers} <= {"conv", "pool", "block"}
    assert [x.order for x in ins.layers] == list(range(len(ins.layers)))
    view = ins.view(*clip)
    for layer in ins.layers[:: max(1, len(ins.layers) // 3)]:
        fm = ins.feature_maps(view, layer.name, k=4)
        assert fm.maps.shape == (min(4, layer.shape[0]), *layer.shape[1:])
        assert fm.energy == sorted(fm.energy, reverse=True)
        full = ins.feature_maps(view, layer.name, k=layer.shape[0])
        assert fm.energy[0] == pytest.approx(max(full.energy))


def _centre_rect_areas(ins, view, layers):
    areas = []
    for layer in layers:
        unit = (0, *[n // 2 for n in layer.shape[1:]])
        rf = ins.receptive_field(view, layer.name, unit)
        (r0, r1), (c0, c1) = rf.rows, rf.cols
        n_rows, n_cols = rf.mask.shape
        assert 0 <= r0 <= r1 < n_rows and 0 <= c0 <= c1 < n_cols
        assert rf.mask[r0:r1 + 1, c0:c1 + 1].any() and rf.mask.sum() <= (r1 - r0 + 1) * (
            c1 - c0 + 1)
        assert np.isfinite(rf.effective).all() and rf.effective.min() >= 0
        areas.append(rf.size[0] * rf.size[1])
    return areas


@pytest.mark.parametrize("arch", ["lenet2d", "ser2d", "combined", "lenet1d"])
def test_receptive_field_lies_in_the_input_and_grows_with_depth(arch, inspectors, clip):
    ins = inspectors[arch]
    view = ins.view(*clip)
    for space in ("fs1", "fs2"):  # the combined model: each path on its own input
        convs = [x for x in ins.layers if x.kind == "conv" and x.space == space]
        if convs:
            areas = _centre_rect_areas(ins, view, convs)
            assert areas == sorted(areas) and areas[-1] > areas[0], (space, areas)


def test_receptive_field_matches_the_architecture(inspectors, clip):
    """lenet2d: 5×5 after the first conv; 5 + 1·(2-1) + 4·2 = 14 after the second (pool 2,
    then a 5×5 at stride 2); ser2d's first (stride-2, padded 3×3) stem conv: 3×3 inside."""
    from ser.models.base import chain_receptive_field

    ins = inspectors["lenet2d"]
    view = ins.view(*clip)
    convs = [x for x in ins.layers if x.kind == "conv"]
    assert ins.receptive_field(view, convs[0].name, (0, 40, 40)).size == (5, 5)
    last = ins.receptive_field(view, convs[1].name, (0, 20, 20))
    (rf_f, _), (rf_t, _) = chain_receptive_field(ins._chains[convs[1].name], 2)
    assert last.size == (rf_f, rf_t) == (14, 14)
    ser = inspectors["ser2d"]
    v2 = ser.view(*clip)
    assert ser.receptive_field(v2, "stem.0", (0, 10, 10)).size == (3, 3)
    # a unit at the corner is clipped by the input's edge
    corner = ser.receptive_field(v2, "stem.0", (0, 0, 0))
    assert corner.rows == (0, 1) and corner.cols == (0, 1)
    with pytest.raises(InsightError, match="outside"):
        ser.receptive_field(v2, "stem.0", (0, 999, 0))


# ------------------------------------------------------------------ figures

def test_figures_are_light_and_use_the_spectrogram_scale(inspectors, clip):
    from ser import plots_insight as pi
    from ser.plots import SPECTROGRAM_SCALE, safe_scale

    ins = inspectors["combined"]
    view = ins.view(*clip)
    a = ins.attribute(view)
    fig = pi.gradcam_overlay(view.spectrogram, a.cam.cam,
                             seconds_per_frame=view.seconds_per_frame)
    spec, veil = fig.data
    assert list(map(list, spec.colorscale)) == safe_scale(SPECTROGRAM_SCALE)
    assert (spec.zmin, spec.zmax) == (-80, 0) and spec.colorbar.title.text == "dB re max"
    assert np.asarray(veil.z).shape == (config.N_MELS, config.FS2_FRAMES)
    bars = pi.fs1_family_bars(a.fs1.families, a.fs1.shares)
    assert list(bars.data[0].x) == list(a.fs1.families)
    fm = ins.feature_maps(view, ins.default_cam_layer.name, k=6)
    grid = pi.feature_map_grid(fm.maps, fm.channels, fm.energy, centres=fm.centres)
    assert len(grid.data) == 6
    rf = ins.receptive_field(view, ins.default_cam_layer.name)
    over = pi.receptive_field_overlay(view.spectrogram, rf,
                                      seconds_per_frame=view.seconds_per_frame)
    assert over.layout.shapes and over.layout.shapes[0].type == "rect"
    one = inspectors["lenet1d"]
    v1 = one.view(*clip)
    rf1 = one.receptive_field(v1, one.layers[0].name)
    assert pi.receptive_field_overlay(None, rf1, seconds_per_frame=1.0).data[0].type == "bar"
    fm1 = one.feature_maps(v1, one.layers[0].name, k=3)
    assert pi.feature_map_grid(fm1.maps, fm1.channels, fm1.energy).data[0].type == "heatmap"


# ------------------------------------------------------------------ pages

def _keys(at) -> list[str]:
    return [str(c.key) for c in at.get("plotly_chart")]


def test_architectures_page_shows_inside_the_models(trained, models_dir):
    at = open_page("pages/architectures.py", clean=True)
    assert not [h for h in at.header if h.value == "Inside the models"]  # designs first
    assert not at.get("plotly_chart") or not any(k.startswith("inside-") for k in _keys(at))
    at.radio(key="arch_view").set_value("Inside the trained models").run()
    assert any(h.value == "Inside the models" for h in at.header)
    a, b = at.selectbox(key="inside_a"), at.selectbox(key="inside_b")
    combined = next(o for o in a.options if "combined" in o)
    a.set_value(combined)
    b.set_value(next(o for o in b.options if "lenet1d" in o))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    keys = _keys(at)
    assert f"inside-{combined}-cam" in keys and f"inside-{combined}-fs1" in keys
    assert any(k.startswith("inside-") and "lenet1d" in k and k.endswith("-fs1") for k in keys)
    assert f"layers-{combined}-maps" in keys and f"layers-{combined}-rf" in keys
    # explain another emotion than the predicted one
    at.selectbox(key=f"inside-{combined}-target").set_value("sad").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("explaining **sad**" in m.value for m in at.markdown) or any(
        "hears **sad**" in m.value for m in at.markdown)
    assert "sad" in str(next(c for c in at.get("plotly_chart")
                             if c.key == f"inside-{combined}-cam").proto.spec)
    # another layer and unit
    layer = at.selectbox(key=f"layers-{combined}-layer")
    layer.set_value(layer.options[0]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"layers-{combined}-rf" in _keys(at)
    assert any("sees" in str(c.proto.spec) for c in at.get("plotly_chart")
               if c.key == f"layers-{combined}-rf")


def test_architectures_page_upload_errors_are_messages(trained, models_dir):
    at = open_page("pages/architectures.py", clean=True)
    at.radio(key="arch_view").set_value("Inside the trained models").run()
    at.radio(key="inside_source").set_value("Upload").run()
    at.file_uploader(key="inside_upload").set_value(
        ("garbage.wav", b"not audio" * 50, "audio/wav")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("not audio" in e.value for e in at.error), [e.value for e in at.error]


def test_results_opens_a_confusion_clip_inside_the_model_in_two_clicks(trained, models_dir):
    import pandas as pd

    from ser.zoo import all_models

    entry = next(e for e in all_models() if e.bundle == __import__("pathlib").Path(
        trained["lenet2d"]))
    preds = pd.read_csv(entry.folder / "predictions.csv")
    true, pred = preds.groupby(["true", "predicted"]).size().idxmax()
    at = open_page("pages/results.py", clean=True)
    group = at.selectbox(key="group")
    at.multiselect(key=f"chosen::{group.value}").set_value([entry.name]).run()
    at.selectbox(key="cell_model").set_value(entry.name)
    at.selectbox(key="cell_true").set_value(true)
    at.selectbox(key="cell_pred").set_value(pred).run()
    assert not at.exception, [e.value for e in at.exception]
    heard = at.selectbox(key=f"heard::{entry.name}")
    clip = heard.options[1].split(" — ")[0]  # shown as "<clip> — confidence …"
    heard.set_value(clip).run()  # click 1: the clip, drawn inside the model below
    assert not at.exception, [e.value for e in at.exception]
    assert f"heard-{entry.name}-cam" in _keys(at)
    at.button(key="heard_open").click().run()  # click 2: layers and fields
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="inside_clip").value == clip
    assert at.selectbox(key="inside_a").value == entry.name
    assert f"layers-{entry.name}-rf" in _keys(at)


def test_predict_page_shows_where_each_model_listens(trained, models_dir, tmp_path):
    from predict_helpers import place, utterances, wav

    u = utterances(tmp_path / "corpus", n=1)
    y, _ = place([0.5, u[0], 0.5])
    at = open_page("pages/predict.py")
    at.file_uploader[0].set_value(("one.wav", wav(y), "audio/wav")).run()
    names = at.multiselect[0].options
    two = [next(n for n in names if "ser2d" in n), next(n for n in names if "lenet1d" in n)]
    at.multiselect[0].set_value(two).run()
    assert not [k for k in _keys(at) if k.startswith("listen-")]  # closed: nothing computed
    at.session_state["listen_open"] = True  # what opening the expander does
    at.run()
    at.multiselect(key="listen_models").set_value(two).run()
    assert not at.exception, [e.value for e in at.exception]
    keys = _keys(at)
    assert f"listen-{two[0]}-cam" in keys and f"listen-{two[1]}-fs1" in keys


def test_architectures_page_long_upload_views_one_window(trained, models_dir, tmp_path):
    from predict_helpers import place, utterances, wav

    u = utterances(tmp_path / "corpus", n=2)
    y, _ = place([1.0, u[0], 2.0, u[1], 2.0])
    assert len(y) / 16000 > 7
    at = open_page("pages/architectures.py", clean=True)
    at.radio(key="arch_view").set_value("Inside the trained models").run()
    at.radio(key="inside_source").set_value("Upload").run()
    at.file_uploader(key="inside_upload").set_value(("long.wav", wav(y), "audio/wav")).run()
    assert not at.exception, [e.value for e in at.exception]
    slider = at.slider(key="inside_start")
    slider.set_value(slider.max).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(k.startswith("inside-") and k.endswith("-cam") for k in _keys(at))
