"""CLI commands about models: train, evaluate, predict, calibrate, results, ensemble, runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from ser import config
from ser.recipe import TrainConfig


def _bool_flag(parser, name: str, default: bool, help: str) -> None:
    parser.add_argument(f"--{name.replace('_', '-')}", dest=name,
                        action=argparse.BooleanOptionalAction, default=default, help=help)


def add_commands(sub) -> None:
    t = sub.add_parser("train", help="train a model (every fit option is a flag)",
                       description="Train one architecture. Without --run the run is created "
                       "in runs/ and trained in this process with a progress bar.")
    t.add_argument("--run", help="execute an existing queued run (what the app launches)")
    # what torchrun starts: one rank of a distributed run (`ser.distributed`)
    t.add_argument("--dist-worker", metavar="RUN_ID", help=argparse.SUPPRESS)
    t.add_argument("--config", help="read options from a JSON file: a run's config.json or a "
                   "model's card.json (retrains that model; flags given here override)")
    t.add_argument("--feature", action="append", default=[], metavar="KEY=VALUE",
                   help="a feature setting other than the seeds' (repeatable), e.g. "
                   "--feature n_mels=64 --feature hop_length=220")
    t.add_argument("--detach", action="store_true", help="queue the run in the background")
    t.add_argument("--max-parallel", type=int, default=1, help="runs allowed at once")
    t.add_argument("--out", help="also copy the bundle to this .pt path")
    t.add_argument("--ship", metavar="NAME", help="publish the result into models/ as NAME.pt "
                   "with its card, report, curves and per-clip predictions")
    helps = {"arch": "architecture name (python -m ser models)", "data": "corpus folder",
             "split": "speaker | random | kfold | loco",
             "test_corpus": "loco: the corpus held out (crema-d, tess, savee, emovo, ...)",
             "balance": "none | corpus (every corpus weighs the same in a batch)",
             "batches": "mixed | speaker (every batch holds one speaker's clips, so "
                        "BatchNorm learns per-voice statistics)",
             "distill_scope": "all | heard (each teacher answers only for clips of the "
                              "corpora it trained on; the label stands in elsewhere)",
             "schedule": "none | cosine | plateau",
             "device": "auto | cpu | cuda | mps", "epochs": "default 30 (1D) / 20 (2D)",
             "precision": "auto (float16 mixed precision on CUDA, float32 elsewhere) | bf16 "
                          "(bfloat16 mixed precision on any device: about twice as fast on "
                          "CPUs with bfloat16 instructions) | fp32",
             "mixup": "mixup alpha (0 = off)",
             "pitch_range": "with --pitch: each copy's pitch shift is drawn in ± this many "
                            "semitones (default 2)",
             "vote_weight": "draw weight of the CREMA-D clips whose meant emotion the crowd "
                            "raters did not hear in the voice (0-1; 1 = off); needs "
                            "summaryTable.csv",
             "freq_shift": "shift spectrograms by up to N mel bands (0 = off)",
             "time_shift": "rotate spectrograms in time by up to this fraction (0 = off)",
             "random_floor": "clip each training log-mel image at a floor drawn between "
                             "this many dB below its peak and the feature floor (0 = off)",
             "random_denoise": "share of training log-mel images whose noise floor is "
                               "subtracted at a random strength (0 = off)",
             "mixstyle": "probability per training batch that the log-mel images mix their "
                         "per-band mean and spread with another image's (frequency-wise "
                         "MixStyle; 0 = off)",
             "max_clips": "subsample for quick trials",
             "init": "start from this trained model (a shipped model's name, a model folder "
                     "or a .pt bundle): its weights and input normalisation instead of "
                     "random ones; same architecture and features (fine-tuning)",
             "readout_l2": "fit a one-linear-layer model (voicelin) in one step: "
                           "logistic regression by L-BFGS with this L2 strength "
                           "(1/C; 0 = off, epochs of Adam)",
             "nproc": "distributed data-parallel training: processes per node (one per GPU; "
                      "on CPUs, gloo processes); batch-size stays the global batch",
             "nnodes": "nodes (machines) training together (run the same command on each)",
             "node_rank": "this node's rank, 0 … nnodes-1 (node 0 hosts the rendezvous)",
             "master_addr": "address of node 0, reachable from every node (nnodes > 1)",
             "master_port": "a free TCP port on node 0 (default 29500)",
             "length": "fixed (216 frames, the seeds) | variable (each clip's own length; "
                       "gn2d, combined and other global-pooling models)"}
    for f in fields(TrainConfig):
        if f.name in ("features", "study"):
            continue
        if f.type in ("bool", bool):
            _bool_flag(t, f.name, f.default, helps.get(f.name, ""))
        else:
            typ = {"int": int, "float": float, "int | None": int, "float | None": float}.get(
                str(f.type), str)
            t.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=typ,
                           default=None, help=helps.get(f.name, f"default {f.default!r}"))
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a bundle on its split's test part")
    e.add_argument("bundle", help="a .pt bundle, a model folder or a shipped model's name")
    e.add_argument("data", nargs="?", help="corpus folder (default: as for training)")
    e.add_argument("--split", help="override the bundle's split protocol")
    e.add_argument("--on", metavar="DATA", help="cross-corpus: score every six-emotion clip "
                   "of another corpus (per-class recall and the share of each predicted label)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict the emotion of audio files")
    p.add_argument("bundle", help="a .pt bundle, a model folder, a folder of model folders, "
                   "a shipped model's name, 'ensemble' (the shipped ensemble) or 'default' "
                   "(the Predict page's default models)")
    p.add_argument("clips", nargs="+", help="audio files, or folders (every audio file in "
                   "them, recursively)")
    p.add_argument("--csv", metavar="PATH", help="batch mode: score every clip on all cores "
                   "with a progress bar and write one row per clip (label, confidence, the "
                   "probability of each emotion, warnings, errors) to PATH")
    p.add_argument("--workers", type=int, default=None, help="processes for --csv "
                   "(default: every core)")
    p.add_argument("--engine", choices=["torch", "onnx"], default="torch", help="with --csv: "
                   "run the networks with PyTorch (default) or onnxruntime (about twice as "
                   "fast on CPU, same probabilities within 1e-4; pip install onnxruntime onnx)")
    p.add_argument("--segments", action="store_true",
                   help="find the speech with voice activity detection (Silero VAD), score "
                   "each speech segment and give the clip's verdict from speech only, "
                   "weighted by duration; exit code 1 when a clip holds no speech")
    p.add_argument("--voice", action="append", default=[], metavar="TAKE",
                   help="a recording of the same speaker (repeatable; at least 3 takes or 8 s "
                   "of speech, in different moods, or one 20-60 s recording): every model is "
                   "adapted to the voice, and its speech gives the voice statistics "
                   "speaker-normalised models need; EMOTION=TAKE (e.g. angry=t1.wav) says "
                   "which emotion a take meant: with 3 or more such takes of 2 or more "
                   "emotions the voice models' final layer is fitted to them")
    p.add_argument("--no-adapt", dest="adapt", action="store_false",
                   help="with --voice: do not adapt the models that are not speaker-"
                   "normalised (to compare)")
    p.add_argument("--voice-profile", metavar="NAME", help="a voice profile saved on the "
                   "Predict page (instead of --voice)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="export a model to ONNX (runs without Python/torch, "
                        "e.g. with onnxruntime; needs `pip install onnxruntime onnx`)")
    ex.add_argument("bundle", metavar="NAME", help="a shipped model's name, a model folder "
                    "or a .pt bundle")
    ex.add_argument("--onnx", action="store_true", help="write NAME.onnx: standardised "
                    "features in, probabilities out (dynamic batch; dynamic time axis when "
                    "the architecture takes any length), and its card NAME.json")
    ex.add_argument("--waveform", action="store_true", help="also write NAME.waveform.onnx: "
                    "mono samples at 22.05 kHz in, probabilities out (STFT, mel, dB and the "
                    "card's normalisation inside the graph; log-mel models only)")
    ex.add_argument("--out", metavar="PATH", help="where to write NAME.onnx (default: "
                    "./<model name>.onnx)")
    ex.set_defaults(func=cmd_export)

    cal = sub.add_parser("calibrate", help="fit temperature scaling and the 'uncertain' "
                         "threshold of every shipped model and the ensemble on their "
                         "validation predictions")
    cal.add_argument("--write", action="store_true", help="store each calibration in the "
                     "model's card (model.pt and card.json; the weights are unchanged) and "
                     "the ensemble's in models/ensemble.json")
    cal.add_argument("--target", type=float, default=0.7, help="accuracy the predictions "
                     "shown as an emotion (not 'uncertain') must reach on the validation "
                     "clips (default 0.7)")
    cal.set_defaults(func=cmd_calibrate)

    res = sub.add_parser("results", help="the results table of shipped models and runs")
    res.add_argument("--markdown", action="store_true", help="as a Markdown table (README)")
    res.add_argument("--shipped", action="store_true", help="shipped models only")
    res.set_defaults(func=cmd_results)

    ens = sub.add_parser("ensemble", help="choose the shipped ensemble on validation data "
                         "and score it on the test clips")
    ens.add_argument("--top", type=int, default=None, help="at most this many members")
    ens.add_argument("--val-predictions", metavar="DATA", help="first score every shipped "
                     "model on the validation clips of corpus DATA (for models shipped "
                     "without NAME.val_predictions.csv)")
    ens.add_argument("--corpus", default="CREMA-D", help="the corpus (display name) whose "
                     "shipped models are candidates (default CREMA-D)")
    ens.add_argument("--write", action="store_true", help="save it as models/ensemble.json")
    ens.set_defaults(func=cmd_ensemble)

    x = sub.add_parser("crosscorpus", help="score models on several corpora (the cross-corpus "
                       "matrix: UAR, and the share of the most predicted label)")
    x.add_argument("models", nargs="+", help="bundles, model folders or shipped names")
    x.add_argument("--corpus", action="append", required=True, metavar="KEY=FOLDER",
                   help="a test corpus (repeatable), e.g. --corpus tess=/data/tess")
    x.add_argument("--data", help="the models' own corpus, if not where their cards say")
    x.add_argument("--write", action="store_true", help="save each model's row as "
                   "cross_corpus.json in its folder (the Results page draws it)")
    x.add_argument("--average", action="store_true", help="score the average of the models' "
                   "probabilities as one row (an ensemble), on corpora none of them trained on; "
                   "with `ensemble` and --write it is stored in models/ensemble.json")
    x.set_defaults(func=cmd_crosscorpus)

    r = sub.add_parser("runs", help="list, show, cancel, kill or delete training runs; "
                       "cleanup stops leftover processes of ended runs")
    r.add_argument("action", nargs="?", default="list", choices=[
        "list", "show", "cancel", "kill", "delete", "cleanup"])
    r.add_argument("run_id", nargs="?")
    r.set_defaults(func=cmd_runs)


def _number_or_text(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _config_from_args(args) -> TrainConfig:
    base = {}
    if args.config:
        from ser.card import Card

        loaded = json.loads(Path(args.config).read_text())
        # A card records the recipe under "training"; a run's config.json is the recipe.
        base = (Card.from_dict(loaded).training.as_dict() if "input_space" in loaded
                else loaded)
        base.pop("study", None)  # a retrain is not part of the study that made it
    for f in fields(TrainConfig):
        v = getattr(args, f.name, None)
        if f.name in ("features", "study") or v is None:
            continue
        if not isinstance(v, bool) or v != f.default or f.name not in base:
            base[f.name] = v
    features = dict(base.get("features") or {})
    for item in getattr(args, "feature", []) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--feature takes KEY=VALUE, not {item!r}")
        features[key.strip()] = _number_or_text(value.strip())
    base["features"] = features
    return TrainConfig.from_dict(base).check()


def cmd_train(args) -> int:
    from ser import runs

    if args.dist_worker:
        code = runs.execute_worker(args.dist_worker)
        # Everything is on disk (rank 0 wrote its files atomically before the last
        # barrier) and the group is destroyed. Leave without the interpreter's teardown:
        # gloo's and the store's C++ threads can abort it ("terminate called without an
        # active exception", SIGABRT) when the other node has already gone, and torchrun
        # then reports a finished run as failed (seen on a loaded machine, 2 nodes).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if args.run:
        return runs.execute(args.run, max_parallel=args.max_parallel)
    if args.ship:
        from ser.fileio import safe_name

        safe_name(args.ship, "--ship name")  # refused before hours of training, not after
    from ser.distill import check_teachers
    from ser.warmstart import check_init

    cfg = check_init(check_teachers(_config_from_args(args)))  # refused before a run exists
    run_id = runs.create(cfg)
    if args.detach:
        runs.launch(run_id, max_parallel=args.max_parallel)
        print(f"queued run {run_id} in {runs.root()}; follow it with "
              f"`python -m ser runs show {run_id}`")
        return 0
    code = _train_foreground(run_id, args.out, args.max_parallel)
    if code == 0 and args.ship and runs.status(run_id)["state"] != "finished":
        print(f"not shipping {args.ship}: the run did not finish", file=sys.stderr)
        return 1
    if code == 0 and args.ship:
        from ser.zoo import ship_run

        dest = ship_run(run_id, args.ship)
        print(f"shipped as {dest}")
    return code


def _train_foreground(run_id: str, out: str | None, max_parallel: int = 1) -> int:
    """Train in this process with tqdm bars; same `runs.execute` path as the app's runs."""
    from tqdm import tqdm

    from ser import runs

    d = runs.run_dir(run_id)
    print(f"run {run_id} → {d}", file=sys.stderr)
    bars: dict = {}
    from ser.fileio import read_json

    n_epochs = TrainConfig.from_dict(read_json(d / "config.json")).resolved_epochs()

    def on_event(e: dict) -> None:
        if e["type"] == "epoch":
            bar = bars.setdefault("epochs", tqdm(total=n_epochs, desc="epochs", unit="ep",
                                                 file=sys.stderr, disable=None))
            bar.update(1)
            extra = ({"corpus_acc": f"{e['train_corpus_acc']:.3f}"}
                     if e.get("train_corpus_acc") is not None else {})
            bar.set_postfix(loss=f"{e['train_loss']:.3f}", val_acc=f"{e['val_accuracy']:.3f}",
                            val_uar=f"{e['val_uar']:.3f}", **extra)

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage,
                                                             unit="clip", file=sys.stderr,
                                                             disable=None))
        bar.update(done - bar.n)

    try:
        code = runs.execute(run_id, max_parallel=max_parallel, on_event=on_event,
                            progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    st = runs.status(run_id)
    if st["state"] == "failed":
        print(f"failed: {st.get('error')}\n{runs.log_tail(run_id, 5)}", file=sys.stderr)
        return code or 1
    rep = json.loads((d / "report.json").read_text())
    _print_report(rep)
    print(f"bundle: {d / 'model.pt'}")
    if out:
        import shutil

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(d / "model.pt", out)
        shutil.copy(d / "card.json", Path(out).with_suffix(".json"))
        print(f"copied to {out}")
    return code


def _print_report(rep: dict) -> None:
    prot = rep.get("protocol", {})
    data = rep.get("data", {})
    print(f"test ({prot.get('description', '?')}; {data.get('corpus', '?')}"
          f"{' — SYNTHETIC' if data.get('synthetic') else ''}; n={rep['n']}):")
    print(f"  accuracy {rep['accuracy']:.4f}  UAR {rep['uar']:.4f}  macro-F1 "
          f"{rep['macro_f1']:.4f}  precision {rep['macro_precision']:.4f}  loss {rep['loss']:.4f}")
    if "human_voice_accuracy" in rep:
        print(f"  human raters (voice only) on the same clips: {rep['human_voice_accuracy']:.4f}")
    print("  confusion (rows true, cols predicted: " + " ".join(config.LABELS) + ")")
    for lab, row in zip(config.LABELS, rep["confusion_matrix"]):
        print(f"    {lab:<8} " + " ".join(f"{v:>5}" for v in row))


def cmd_evaluate(args) -> int:
    from ser.bundle import load_bundle
    from ser.cli.data_commands import progress_bar
    from ser.ensemble import bundle_paths
    from ser.evaluation import evaluate_bundle

    paths = bundle_paths(args.bundle)
    if len(paths) != 1:
        print(f"error: {args.bundle} names no single model", file=sys.stderr)
        return 2
    b = load_bundle(paths[0])
    bar = progress_bar("extracting features")
    if args.on:
        from ser.evaluation import evaluate_on_corpus

        rep, _ = evaluate_on_corpus(b, args.on, progress=lambda stage, d, t: bar(d, t))
        if args.json:
            print(json.dumps(rep, indent=2, default=str))
            return 0
        _print_report(rep)
        print("  predicted share: " + ", ".join(f"{k} {v:.0%}" for k, v in
                                                rep["predicted_share"].items()))
        return 0
    rep, _ = evaluate_bundle(b, args.data, split=args.split,
                             progress=lambda stage, d, t: bar(d, t))
    if not rep["data"]["fingerprint_matches"]:
        print("warning: the corpus differs from the clips this model was trained and split "
              "on (data fingerprint); the figures are not comparable to its card's.",
              file=sys.stderr)
    if args.json:
        print(json.dumps(rep, indent=2, default=str))
    else:
        _print_report(rep)
    return 0


def cmd_predict(args) -> int:
    """Each clip is decoded once for every model; a clip that cannot be read or scored is
    reported and the next one is tried (exit status 2 at the end if any failed). Quality
    warnings (silence, very short clips, channels cancelling out …) go to stderr, as the
    Predict page shows them."""
    from ser.audio import AudioError
    from ser.ensemble import bundle_paths
    from ser.inference import Predictor, ensemble

    # ``default`` with a voice is the Predict page's calibrated set, as on the page.
    paths = bundle_paths(args.bundle, voice=bool(args.voice or args.voice_profile))
    if not paths:
        print(f"error: no bundles in {args.bundle}", file=sys.stderr)
        return 2
    args.clips = expand_clips(args.clips)
    if not args.clips:
        print("error: no audio files found", file=sys.stderr)
        return 2
    try:
        args.voice_profile_obj = _voice(args)
    except (AudioError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    predictors = [Predictor(p) for p in paths]
    if args.segments:
        return _predict_segments(args, predictors)
    voice = args.voice_profile_obj
    needing = [p.name for p in predictors if p.needs_voice]
    if needing and voice is None:
        print(f"error: {', '.join(needing)} speaker-normalised: give a few recordings of the "
              "speaker with --voice (or use --segments with a long recording)",
              file=sys.stderr)
        return 2
    if args.csv:
        return _predict_batch(args, paths, voice)
    status = 0
    results = {}
    for clip in args.clips:
        try:
            preds, warnings = _score_clip(clip, predictors, voice, args.adapt)
        except AudioError as err:
            print(f"{clip}: error: {err}", file=sys.stderr)
            status = 2
            continue
        except Exception as err:  # noqa: BLE001 - one bad clip must not stop the others
            print(f"{clip}: error: could not be scored ({type(err).__name__}: {err})",
                  file=sys.stderr)
            status = 2
            continue
        for w in warnings:
            print(f"{clip}: warning: {w}", file=sys.stderr)
        probs = ensemble(preds)
        results[clip] = {p.name: {**r.as_dict(), "calibrated": p.calibration is not None,
                                  "temperature": p.temperature}
                         for p, r in zip(predictors, preds)}
        label = config.LABELS[int(probs.argmax())]
        if not args.json:
            print(f"{clip}: {label} ({probs.max():.0%})" + ("  [ensemble of "
                  f"{len(preds)}]" if len(preds) > 1 else ""))
            for p, r in zip(predictors, preds):
                top = ", ".join(f"{lab} {v:.2f}" for lab, v in sorted(
                    zip(config.LABELS, r.probs), key=lambda x: -x[1])[:3])
                print(f"  {p.name:<28} {top}" + (f"  ({len(r.window_probs)} windows)"
                                                 if len(r.window_probs) > 1 else "")
                      + ("" if p.calibration else "  (uncalibrated)"))
    if args.json:
        print(json.dumps(results, indent=2))
    return status


def expand_clips(items: list[str]) -> list[str]:
    """The audio files named: files as given, folders searched recursively (sorted)."""
    out = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file()
                          and f.suffix.lower() in config.AUDIO_EXTENSIONS)
        else:
            out.append(item)
    return out


#: Per worker process: the predictors of the bundles it was given, loaded once.
_WORKER_PREDICTORS: dict[tuple[str, ...], list] = {}


def _batch_score(bundles: tuple[str, ...], voice, adapt: bool,
                 graphs: tuple[str, ...] | None,
                 clip: str) -> tuple[str, dict]:
    """One CSV row for ``clip`` (run in a worker: its predictors load on first use; with
    ``graphs``, ONNX files of the networks, onnxruntime runs them)."""
    from ser.audio import AudioError

    if bundles not in _WORKER_PREDICTORS:
        import torch

        from ser.inference import Predictor

        torch.set_num_threads(1)  # one process per core
        predictors = [Predictor(b) for b in bundles]
        if graphs:
            from ser.export import OnnxLogits

            for p, g in zip(predictors, graphs):
                p.model = OnnxLogits(g)
        _WORKER_PREDICTORS[bundles] = predictors
    predictors = _WORKER_PREDICTORS[bundles]
    row: dict = {"clip": clip}
    try:
        preds, warnings = _score_clip(clip, predictors, voice, adapt)
    except AudioError as err:
        return clip, {**row, "error": str(err)}
    except Exception as err:  # noqa: BLE001 - one bad clip must not stop the others
        return clip, {**row, "error": f"could not be scored ({type(err).__name__}: {err})"}
    from ser.inference import ensemble

    probs = ensemble(preds)
    row.update(label=config.LABELS[int(probs.argmax())], confidence=float(probs.max()),
               **{f"p_{lab}": float(v) for lab, v in zip(config.LABELS, probs)},
               models=len(preds), windows=max(len(r.window_probs) for r in preds),
               warnings="; ".join(warnings), error="")
    return clip, row


def _predict_batch(args, bundles: list[Path], voice) -> int:
    """``predict --csv``: every clip on every core (each decoded once), a tqdm bar, one
    CSV row per clip in the order given. Exit status 2 if any clip failed."""
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="ser-onnx-")  # the networks' graphs (--engine)
    try:
        return _predict_batch_in(args, bundles, voice, tmp.name)
    finally:
        tmp.cleanup()


def _predict_batch_in(args, bundles: list[Path], voice, tmp: str) -> int:
    from functools import partial

    import pandas as pd
    from tqdm import tqdm

    from ser.fileio import atomic_write_text
    from ser.parallel import map_unordered

    graphs = None
    if args.engine == "onnx":
        from ser.bundle import load_bundle
        from ser.export import logits_graph, require

        require("onnxruntime")
        graphs = []
        for i, b in enumerate(bundles):
            path = Path(tmp) / f"{i}.onnx"
            path.write_bytes(logits_graph(load_bundle(b)))
            graphs.append(str(path))
        graphs = tuple(graphs)
    fn = partial(_batch_score, tuple(str(b) for b in bundles), voice, args.adapt, graphs)
    rows: dict[str, dict] = {}
    with tqdm(total=len(args.clips), desc="predicting", unit="clip", file=sys.stderr,
              disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        for clip, row in map_unordered(fn, args.clips, workers=args.workers,
                                       progress=progress, chunksize=8):
            rows[clip] = row
    cols = (["clip", "label", "confidence"] + [f"p_{lab}" for lab in config.LABELS]
            + ["models", "windows", "warnings", "error"])
    table = pd.DataFrame([rows[c] for c in args.clips], columns=cols)
    table[["models", "windows"]] = table[["models", "windows"]].astype("Int64")
    atomic_write_text(args.csv, table.to_csv(index=False))
    failed = int((table["error"].fillna("") != "").sum())
    print(f"{len(table) - failed} clip(s) scored by {len(bundles)} model(s) → {args.csv}"
          + (f"; {failed} could not be scored (see the error column)" if failed else ""),
          file=sys.stderr)
    return 2 if failed else 0


def _labelled_take(item: str) -> tuple[str | None, str]:
    """``EMOTION=PATH`` (a take meant as one of the six emotions) or a plain ``PATH``."""
    head, sep, rest = item.partition("=")
    if sep and head in config.LABELS:
        return head, rest
    return None, item


def _voice(args):
    """The `VoiceProfile` from ``--voice`` takes or ``--voice-profile`` (None without)."""
    from ser.audio import load_audio
    from ser.speakers import VoiceProfile, profile_path, usable

    if args.voice_profile:
        profile = VoiceProfile.load(profile_path(args.voice_profile))
    elif not args.voice:
        return None
    else:
        profile = VoiceProfile()
        for item in args.voice:
            label, take = _labelled_take(item)
            y, sr = load_audio(take)
            if profile.add_recording(y, sr, label) == 0:
                print(f"{take}: no speech found; not used for the voice", file=sys.stderr)
        if not profile.clips:
            raise ValueError("none of the --voice recordings holds speech")
    known = len(profile.labelled)
    print(f"voice: {profile.takes} take(s), {profile.seconds:.1f} s of speech"
          + (f", {known} labelled" + ("" if profile.labelled_ready else
                                      " (too few to fit: 3 takes of 2 emotions or more)")
             if known else ""), file=sys.stderr)
    if not usable(profile):
        raise ValueError(f"the voice holds {profile.takes} take(s) and "
                         f"{profile.seconds:.1f} s of speech: give at least 3 takes or 8 s")
    return profile


def _score_clip(clip: str, predictors, voice=None, adapt: bool = True
                ) -> tuple[list, tuple[str, ...]]:
    """Calibrated predictions of every model for one clip, decoded once (and resampled
    once per rate the models use), and the clip's quality warnings. With ``voice`` a
    speaker-normalised model is normalised by it, any other adapted to it (``adapt``)."""
    from ser.audio import check_scorable, decode, quality_report, resample

    y, sr, notes = decode(clip)
    check_scorable(y, sr, Path(clip).name)
    warnings = quality_report(y, sr, notes=notes).warnings
    by_rate: dict[int, object] = {}
    features: dict[int, dict] = {}  # per rate: features shared by models with equal configs
    preds = []
    for p in predictors:
        rate = p.cfg.sample_rate
        if rate not in by_rate:
            by_rate[rate] = resample(y, sr, rate)
        preds.append(p.calibrated(p.predict_samples(
            by_rate[rate], rate, voice=voice if adapt or p.needs_voice else None,
            features=features.setdefault(rate, {}), refit=adapt)))
    return preds, warnings


def _predict_segments(args, predictors) -> int:
    """``predict --segments``: the Predict page's chain (`ser.inference.analyse`)."""
    from ser.audio import AudioError
    from ser.ensemble import read_ensemble
    from ser.inference import analyse, open_clip

    ens = read_ensemble()
    status = 0
    results = {}
    for clip_path in args.clips:
        try:
            clip = open_clip(clip_path, Path(clip_path).name)
            a = analyse(clip, predictors, segments=True, ensemble=ens,
                        voice=getattr(args, "voice_profile_obj", None), adapt=args.adapt)
        except AudioError as err:
            print(f"{clip_path}: error: {err}", file=sys.stderr)
            status = 2
            continue
        except Exception as err:  # noqa: BLE001 - one bad clip must not stop the others
            print(f"{clip_path}: error: could not be analysed ({type(err).__name__}: "
                  f"{err})", file=sys.stderr)
            status = 2
            continue
        for w in clip.quality.warnings:
            print(f"{clip_path}: warning: {w}", file=sys.stderr)
        results[clip_path] = a.as_dict()
        if not a.ok:
            print(f"{clip_path}: {a.message}", file=sys.stderr)
            status = max(status, 1)
            continue
        if args.json:
            continue
        if a.uncertain:
            (l1, p1), (l2, p2) = a.top2
            head = f"uncertain: {l1} {p1:.0%} or {l2} {p2:.0%}"
        else:
            head = f"{a.label} ({a.confidence:.0%})"
        who = f"ensemble of {len(a.models)}" if len(a.models) > 1 else a.models[0].name
        print(f"{clip_path}: {head}  [{who}; {len(a.segments)} speech segment"
              f"{'s' * (len(a.segments) > 1)}, {a.speech_s:.1f} s of {a.duration_s:.1f} s]")
        print(f"  confidence: {a.calibration_note}")
        if a.disagree:
            print("  models disagree: " + ", ".join(f"{n} {lab}" for lab, n in
                                                   a.votes.items()))
        print(f"  {'#':>3} {'start':>7} {'end':>7}  {'emotion':<10} {'conf.':>5}  next")
        for r in a.table().itertuples():
            mark = "?" if r.uncertain else " "
            print(f"  {r.segment:>3} {r.start_s:>7.2f} {r.end_s:>7.2f}  {r.emotion:<9}{mark} "
                  f"{r.confidence:>5.0%}  {r.runner_up} {r.runner_up_confidence:.0%}")
    if args.json:
        print(json.dumps(results, indent=2))
    return status


def cmd_export(args) -> int:
    from ser.bundle import load_bundle
    from ser.export import ExportError, export_onnx, require

    if not (args.onnx or args.waveform):
        print("error: choose a format: --onnx (and --waveform for the front end too)",
              file=sys.stderr)
        return 2
    from ser.ensemble import bundle_paths

    paths = bundle_paths(args.bundle)
    if len(paths) != 1:
        print(f"error: {args.bundle!r} is not a shipped model's name, a model folder or a .pt "
              "bundle" + (" (it names several models; give one)" if paths else ""),
              file=sys.stderr)
        return 2
    try:
        require("onnx")
        bundle = load_bundle(paths[0])
        dest = Path(args.out) if args.out else Path(f"{bundle.name}.onnx")
        written = export_onnx(bundle, dest, waveform=args.waveform)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for p in written:
        print(f"wrote {p}")
    return 0


def cmd_calibrate(args) -> int:
    from ser.calibration import (
        apply_temperature,
        expected_calibration_error,
        log_probs,
        prediction_arrays,
    )
    from ser.ensemble import calibrate_ensemble, member_probs, read_ensemble, write_ensemble
    from ser.zoo import calibrate_entry, same_calibration, shipped_models, write_calibration

    entries = shipped_models()
    if not entries:
        print(f"no shipped models in {config.models_dir()}")
        return 0

    def test_ece(probs, y, T) -> tuple[float, float]:
        return (expected_calibration_error(probs, y),
                expected_calibration_error(apply_temperature(log_probs(probs), T), y))

    print(f"{'model':<40} {'n val':>5} {'T':>6} {'ECE val':>15} {'ECE test':>15} "
          f"{'threshold':>9} {'coverage':>8} {'acc>=thr':>8}")
    print(f"{'':<40} {'':>5} {'':>6} {'before → after':>15} {'before → after':>15}")

    def row(name, cal, test) -> None:
        t = f"{test[0]:.3f} → {test[1]:.3f}" if test else "–"
        print(f"{name:<40} {cal.n_val:>5} {cal.temperature:>6.3f} "
              f"{cal.ece_before:.3f} → {cal.ece_after:.3f} {t:>15} {cal.threshold:>9.3f} "
              f"{cal.coverage:>8.1%} {cal.precision_above:>8.1%}", flush=True)

    fitted, written, kept = {}, [], []
    for e in entries:
        cal = calibrate_entry(e, target_precision=args.target)
        if cal is None:
            print(f"{e.name:<40} no val_predictions.csv: not calibrated")
            continue
        fitted[e.name] = cal
        test = e.predictions("test")
        row(e.name, cal, test_ece(*prediction_arrays(test), cal.temperature)
            if test is not None else None)
        if args.write:
            (written if write_calibration(e.bundle, cal) else kept).append(e.name)
    ens = read_ensemble()
    if ens is not None:
        try:
            cal = calibrate_ensemble(ens, entries, calibrations=fitted,
                                     target_precision=args.target)
        except ValueError as err:
            print(f"{ens.name:<40} not calibrated: {err}")
        else:
            y, raw = member_probs(ens, entries, "test", calibrations=fitted, calibrated=False)
            _, chain = member_probs(ens, entries, "test", calibrations=fitted)
            after = apply_temperature(log_probs(chain), cal.temperature)
            row(ens.name + " (mean of members)", cal,
                (expected_calibration_error(raw, y), expected_calibration_error(after, y)))
            if args.write and same_calibration(ens.calibration, cal.to_dict()):
                kept.append("models/ensemble.json")
            elif args.write:
                ens.calibration = cal.to_dict()
                write_ensemble(ens)
                written.append("models/ensemble.json")
    print(f"T > 1: the model was over-confident. ECE val: on the validation clips T was "
          f"fitted on; ECE test: on the unseen test clips (for the ensemble, 'before' is "
          f"the plain average of the members' outputs, 'after' the members' temperatures, "
          f"the average and the ensemble's temperature). Below the threshold the app says "
          f"'uncertain'; coverage: share of validation clips at or above it; acc>=thr: "
          f"their accuracy (target {args.target:.0%}).")
    if args.write:
        # Only what changed is rewritten: an unchanged card stays byte for byte as it was.
        print(f"written: {', '.join(written)}" if written else
              "written: nothing (every stored calibration is already up to date)")
        if written and kept:
            print(f"unchanged: {len(kept)} (already up to date)")
    else:
        print("nothing written (use --write)")
    return 0


def cmd_results(args) -> int:
    from ser.zoo import all_models, markdown_table, shipped_models, table

    entries = shipped_models() if args.shipped else all_models()
    if not entries:
        print("no trained models")
        return 0
    if args.markdown:
        print(markdown_table(entries))
    else:
        import pandas as pd

        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(table(entries).to_string(index=False))
    return 0


def cmd_ensemble(args) -> int:
    from ser.ensemble import build_ensemble, write_ensemble
    from ser.zoo import shipped_models, write_val_predictions

    if args.val_predictions:
        from tqdm import tqdm

        from ser.bundle import load_bundle

        for e in tqdm(shipped_models(), desc="validation predictions", unit="model"):
            write_val_predictions(load_bundle(e.bundle), args.val_predictions)
    ens = build_ensemble(shipped_models(), top=args.top, corpus=args.corpus)
    t = ens.test
    print(f"{ens.name}: {', '.join(ens.members)}\n  {ens.selection}\n"
          + (f"  validation UAR {ens.val_uar:.4f}\n" if ens.val_uar is not None else "")
          + f"  test accuracy {t.accuracy:.4f}  UAR {t.uar:.4f}  macro-F1 "
          f"{t.macro_f1:.4f}  precision {t.macro_precision:.4f}  (n={t.n})")
    if args.write:
        print(f"written to {write_ensemble(ens)}")
    return 0


def _cell_text(cell) -> str:
    if cell is None:
        return f"{'–':>16}"
    mark = " " if cell.kind == "unseen" else "*"
    return f"{cell.uar:>7.1%} top {cell.top_share:>3.0%}{mark}"


def cmd_crosscorpus(args) -> int:
    from ser import crosscorpus
    from ser.bundle import load_bundle

    corpora = crosscorpus.parse_corpora(args.corpus)
    from ser.ensemble import bundle_paths

    paths = [p for m in args.models for p in bundle_paths(m)]
    if not paths:
        print("error: no models found", file=sys.stderr)
        return 2
    print(f"{'model':<44} " + " ".join(f"{k:>16}" for k in corpora))
    if args.average:
        from ser.ensemble import read_ensemble, write_ensemble

        cells = {c.corpus: c for c in crosscorpus.score_average(
            [load_bundle(p) for p in paths], corpora)}
        print(f"{'average of ' + str(len(paths)) + ' models':<44} "
              + " ".join(_cell_text(cells.get(k)) for k in corpora), flush=True)
        ens = read_ensemble() if args.models == ["ensemble"] else None
        if args.write and ens is not None:
            from dataclasses import asdict

            ens.cross_corpus = [asdict(c) for c in cells.values()]
            print(f"written to {write_ensemble(ens)}")
        return 0
    for path in paths:
        b = load_bundle(path)
        cells = {c.corpus: c for c in crosscorpus.score(b, corpora, own_data=args.data)}
        print(f"{b.name:<44} " + " ".join(_cell_text(cells.get(k)) for k in corpora),
              flush=True)
        if args.write:
            crosscorpus.write(path.parent, list(cells.values()))
    print("UAR; top = share of the most predicted label; * = the corpus was in training "
          "(its held-out test speakers are scored)")
    return 0


def cmd_runs(args) -> int:
    from ser import runs

    if args.action == "list":
        rows = runs.list_runs()
        if not rows:
            print(f"no runs in {runs.root()}")
        for r in rows:
            st, rep = r["status"], r["report"]
            acc = f"acc {rep['accuracy']:.3f} UAR {rep['uar']:.3f}" if rep else ""
            ep = f"epoch {st.get('epoch', 0)}/{st.get('epochs', '?')}" if st["state"] == \
                "running" else ""
            print(f"{r['run_id']:<40} {st['state']:<10} {ep:<14} {acc}")
        return 0
    if args.action == "cleanup":
        cleaned = runs.cleanup()
        print(f"stopped leftover processes of {len(cleaned)} run(s)"
              + (": " + ", ".join(cleaned) if cleaned else ""))
        return 0
    if not args.run_id:
        print("error: give a run id", file=sys.stderr)
        return 2
    if args.action == "show":
        st = runs.status(args.run_id)
        print(json.dumps(st, indent=2))
        m = runs.metrics(args.run_id)
        for e in [x for x in m if x["type"] == "epoch"][-5:]:
            corpus = (f" corpus read {e['train_corpus_acc']:.3f}"
                      if e.get("train_corpus_acc") is not None else "")
            print(f"epoch {e['epoch']}: train loss {e['train_loss']:.4f} val acc "
                  f"{e['val_accuracy']:.3f} UAR {e['val_uar']:.3f}{corpus}")
        print(runs.log_tail(args.run_id, 5))
    elif args.action == "cancel":
        print(json.dumps(runs.cancel(args.run_id), indent=2))
    elif args.action == "kill":
        print(json.dumps(runs.kill(args.run_id), indent=2))
    elif args.action == "delete":
        runs.delete(args.run_id)
        print(f"deleted {args.run_id}")
    return 0
