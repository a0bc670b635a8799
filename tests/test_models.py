"""Tests for the model registry, the architectures and their descriptions."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import torch

from ser import config
from ser.models import (
    ACTIVATIONS,
    MIN_FRAMES,
    create_model,
    default_kwargs,
    describe,
    list_models,
    model_class,
    model_input_space,
    models_table,
)

ALL_MODELS = ["alexnet1d", "alexnet2d", "combined", "custom1d", "custom2d", "gn1d", "gn2d",
              "lenet1d", "lenet2d", "ser2d", "sercrnn", "serformer", "vgg1d", "vgg2d", "voicelin",
              "voicenet"]

#: Parameter counts at default kwargs. A change here must be deliberate: shipped bundles
#: store weights for these exact shapes.
PINNED_PARAMS = {
    "alexnet1d": 1_391_718,
    "alexnet2d": 2_274_998,
    "combined": 656_942,
    "custom1d": 557_222,
    "custom2d": 25_410,
    "gn1d": 561_030,
    "gn2d": 96_558,
    "lenet1d": 86_206,
    "lenet2d": 2_853_046,
    "ser2d": 349_311,
    "sercrnn": 286_719,
    "serformer": 653_439,
    "vgg1d": 2_019_670,
    "vgg2d": 1_283_102,
    "voicelin": 10_758,
    "voicenet": 460_550,
}


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    # Tiny batches gain nothing from intra-op threads, and on a busy machine every
    # parallel region waits for a second core: one thread keeps the suite fast and steady.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _forward(model: torch.nn.Module, batch: int = 2, frames: int | None = None) -> torch.Tensor:
    inputs = model.example_input(batch=batch, frames=frames)
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


# --- registry -----------------------------------------------------------------------------

def test_list_models_is_sorted_and_complete() -> None:
    assert list_models() == ALL_MODELS
    assert list_models("*") == sorted(list_models())


@pytest.mark.parametrize(("pattern", "expected"), [
    ("*2d", ["alexnet2d", "custom2d", "gn2d", "lenet2d", "ser2d", "vgg2d"]),
    ("*1d", ["alexnet1d", "custom1d", "gn1d", "lenet1d", "vgg1d"]),
    ("gn*", ["gn1d", "gn2d"]),
    ("lenet?d", ["lenet1d", "lenet2d"]),
    ("nothing*", []),
])
def test_list_models_wildcards(pattern: str, expected: list[str]) -> None:
    assert list_models(pattern) == expected


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet50'") as info:
        create_model("resnet50")
    for name in ALL_MODELS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="valid names"):
        model_input_space("resnet50")
    with pytest.raises(ValueError, match="valid names"):
        describe("resnet50")


def test_unknown_kwarg_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['depth'\]"):
        create_model("gn2d", depth=3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"activation": "gelu"}, "activation must be one of"),
    ({"width": 0}, "width must be"),
    ({"dropout": 1.0}, "dropout must be"),
    ({"n_classes": 1}, "n_classes must be"),
])
def test_bad_values_are_value_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model("lenet1d", **kwargs)


def test_model_input_space() -> None:
    assert model_input_space("vgg1d") == "fs1"
    assert model_input_space("ser2d") == "fs2"
    assert model_input_space("combined") == "fs1+fs2"
    for name in ALL_MODELS:
        assert model_input_space(name) == create_model(name).input_space


def test_defaults_are_keyword_arguments() -> None:
    for name in ALL_MODELS:
        defaults = default_kwargs(name)
        assert set(defaults) == {"activation", "width", "dropout", "n_classes", "fs1_dim",
                                 "n_mels", "frames"}
        assert defaults["n_classes"] == config.N_CLASSES
        assert (defaults["fs1_dim"], defaults["n_mels"], defaults["frames"]) == (169, 128, 216)
    assert default_kwargs("ser2d")["activation"] == "silu"
    assert default_kwargs("lenet2d")["activation"] == "relu"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_input_size_follows_the_feature_config(name: str) -> None:
    # The seeds' sizes stay out of hparams, so bundles written before feature configs
    # existed rebuild unchanged; other sizes are recorded and rebuild the same model.
    assert not {"fs1_dim", "n_mels", "frames"} & set(create_model(name).hparams)
    model = create_model(name, fs1_dim=150, n_mels=64, frames=300).eval()
    assert model.hparams["n_mels"] == 64
    x = model.example_input(batch=2)
    with torch.no_grad():
        out = model(*x) if isinstance(x, tuple) else model(x)
    assert out.shape == (2, config.N_CLASSES)
    twin = create_model(name, **model.hparams)
    twin.load_state_dict(model.state_dict())


def test_hparams_rebuild_the_same_model() -> None:
    model = create_model("gn2d", activation="elu", width=0.5)
    assert model.hparams == {"activation": "elu", "width": 0.5, "dropout": 0.3,
                             "n_classes": config.N_CLASSES}
    twin = create_model("gn2d", **model.hparams)
    assert twin.load_state_dict(model.state_dict()) is not None


# --- forward shapes -----------------------------------------------------------------------

@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("width", [1.0, 0.5])
@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_shape(name: str, width: float, activation: str) -> None:
    model = create_model(name, width=width, activation=activation).eval()
    with torch.no_grad():
        out = _forward(model)
    assert out.shape == (2, config.N_CLASSES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_n_classes_and_train_mode(name: str) -> None:
    model = create_model(name, n_classes=4).train()
    out = _forward(model, batch=3)
    assert out.shape == (3, 4)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if model_class(n).variable_length])
@pytest.mark.parametrize("frames", [MIN_FRAMES, 100, 300])
def test_variable_length(name: str, frames: int) -> None:
    model = create_model(name).eval()
    with torch.no_grad():
        assert _forward(model, frames=frames).shape == (2, config.N_CLASSES)


def test_which_models_are_variable_length() -> None:
    variable = [n for n in ALL_MODELS if model_class(n).variable_length]
    assert variable == ["combined", "gn2d", "ser2d", "sercrnn", "serformer"]


@pytest.mark.parametrize("name", ["lenet2d", "vgg2d", "alexnet2d", "custom2d"])
def test_fixed_length_models_reject_other_lengths(name: str) -> None:
    model = create_model(name)
    with pytest.raises(ValueError, match="216 frames"):
        model(torch.zeros(1, 1, config.N_MELS, 100))


def test_input_shape_errors_are_readable() -> None:
    with pytest.raises(ValueError, match="FS1 input"):
        create_model("gn1d")(torch.zeros(2, 1, 100))
    with pytest.raises(ValueError, match="at least"):
        create_model("ser2d")(torch.zeros(2, 1, config.N_MELS, MIN_FRAMES - 1))
    with pytest.raises(ValueError, match="takes"):
        create_model("gn2d")(torch.zeros(2, 1, 64, 216))


def _learnable(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``x`` as light noise over a sinusoid whose frequency along the last axis is the class."""
    positions = torch.arange(x.shape[-1], dtype=torch.float32)
    cycles = (targets.float() + 1) / 16
    wave = torch.sin(2 * math.pi * cycles[:, None] * positions[None, :])
    return wave.reshape(x.shape[0], *(1,) * (x.dim() - 2), x.shape[-1]) + 0.3 * x


@pytest.mark.parametrize("name", ["lenet1d", "gn1d", "alexnet1d", "lenet2d", "gn2d", "ser2d",
                                  "sercrnn", "combined"])
def test_a_few_steps_lower_the_loss(name: str) -> None:
    model = create_model(name, dropout=0.0).train()
    targets = torch.arange(8) % config.N_CLASSES
    example = model.example_input(batch=8)
    inputs = (tuple(_learnable(x, targets) for x in example) if isinstance(example, tuple)
              else _learnable(example, targets))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        logits = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.6 * losses[0]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_trains_a_step_in_bfloat16(name: str) -> None:
    """--precision bf16 on the CPU: every architecture's forward runs under bfloat16
    autocast (convolutions, GRU, attention) with a finite loss and float32 gradients."""
    from ser.training import TrainStep

    torch.manual_seed(0)
    model = create_model(name).train()
    example = model.example_input(batch=4)
    step = TrainStep(model, torch.optim.Adam(model.parameters(), lr=1e-3), None, 0.1, 1.0,
                     torch.device("cpu"), precision="bf16")
    loss, logits = step(example if isinstance(example, tuple) else (example,),
                        torch.arange(4) % config.N_CLASSES)
    assert torch.isfinite(loss) and logits.shape == (4, config.N_CLASSES)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_gru_multiply_accumulates_are_counted() -> None:
    rows = describe("sercrnn")["layers"]
    gru = next(r for r in rows if r["type"] == "GRU")
    # 54 frames after the front end, 2 directions, 3 gates of (128 inputs + 96 state) x 96.
    assert gru["macs"] == 54 * 2 * 3 * 96 * (128 + 96)
    assert gru["output_shape"] == (54, 192)


def test_eval_mode_is_deterministic() -> None:
    model = create_model("ser2d").eval()
    x = model.example_input(batch=2)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


# --- describe -----------------------------------------------------------------------------

DESCRIBE_KEYS = {"name", "display_name", "family", "input_space", "input_shape", "kwargs",
                 "layers", "total_params", "trainable_params", "macs", "receptive_field",
                 "variable_length", "summary", "size_note", "source"}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_describe(name: str) -> None:
    start = time.perf_counter()
    info = describe(name)
    assert time.perf_counter() - start < 0.5 * 4  # budget 0.5 s; slack for a busy CI
    assert set(info) == DESCRIBE_KEYS
    model = create_model(name)
    assert info["total_params"] == sum(p.numel() for p in model.parameters())
    assert info["trainable_params"] == info["total_params"]
    assert sum(row["params"] for row in info["layers"]) == info["total_params"]
    assert info["macs"] == sum(row["macs"] for row in info["layers"]) > 0
    assert info["kwargs"] == default_kwargs(name)
    assert info["family"] in {"1D CNN", "2D CNN", "1D+2D", "2D CNN + transformer",
                              "Pretrained encoder + head"}
    assert info["source"] in {"Keras notebook seed", "PyTorch seed", "SER Studio"}
    assert info["display_name"] and len(info["summary"]) > 80 and info["size_note"]
    for row in info["layers"]:
        assert set(row) == {"layer", "type", "output_shape", "params", "macs"}
    assert info["layers"][-1]["output_shape"] == (config.N_CLASSES,)
    rf = info["receptive_field"]
    if info["input_space"] == "fs1":
        assert info["input_shape"] == config.FS1_SHAPE and isinstance(rf, int) and rf > 1
    elif info["input_space"] == "fs2":
        assert info["input_shape"] == config.FS2_SHAPE
        assert len(rf) == 2 and all(isinstance(v, int) and v > 1 for v in rf)
    elif info["input_space"] == "voice":
        assert info["input_shape"] == (1, 1792) and set(rf) == {"voice"}
    else:
        assert set(rf) == {"fs1", "fs2"}


def test_describe_passes_kwargs_through() -> None:
    small, full = describe("gn2d", width=0.5), describe("gn2d")
    assert small["kwargs"]["width"] == 0.5
    assert small["total_params"] < full["total_params"]
    assert small["macs"] < full["macs"]


def test_describe_known_values() -> None:
    lenet = describe("lenet2d")
    convs = [row for row in lenet["layers"] if row["type"] == "Conv2d"]
    assert convs[0]["output_shape"] == (6, 124, 212)
    assert convs[0]["macs"] == 6 * 124 * 212 * 25
    assert lenet["receptive_field"] == (16, 16)
    assert describe("ser2d")["receptive_field"][0] == config.N_MELS


def test_pinned_parameter_counts() -> None:
    counts = {name: sum(p.numel() for p in create_model(name).parameters())
              for name in ALL_MODELS}
    assert counts == PINNED_PARAMS


def test_models_table() -> None:
    table = models_table()
    assert list(table["name"]) == ALL_MODELS
    assert list(table.columns) == ["name", "display_name", "family", "input", "params", "MACs",
                                   "variable_length"]
    assert dict(zip(table["name"], table["params"], strict=True)) == PINNED_PARAMS
    assert list(models_table("gn*")["name"]) == ["gn1d", "gn2d"]


def test_serformer_attention_is_counted_in_the_layer_table() -> None:
    rows = [r for r in describe("serformer")["layers"] if r["type"] == "SelfAttention"]
    assert len(rows) == 2  # one per Conformer block
    steps, dim = rows[0]["output_shape"]
    assert (steps, dim) == (54, 128)  # 216 frames / 4, the front end's 128 channels
    assert rows[0]["params"] == 4 * dim * dim + 4 * dim  # q, k, v and output projections
    assert rows[0]["macs"] == 4 * steps * dim * dim + 2 * steps * steps * dim
