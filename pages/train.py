"""Train: choose architectures and options, launch background runs, watch them live.

The options are plain widgets (no form), so the split caption, sizes and time estimates
follow every change at once; only the Launch button starts runs.
"""

import time

import pandas as pd
import streamlit as st

from ser import plots, runs, studies
from ser.devices import device_description
from ser.distill import check_teachers
from ser.models import describe, list_models, model_input_space
from ser.recipe import MAX_COPIES, PRECISIONS, TrainConfig
from ser.splits import make_split
from ser.training import cpu_has_bf16, estimate_throughput, precision_problem
from ser.warmstart import check_init
from ser.zoo import all_models, list_pretrained
from ui.state import (
    corpus_badge,
    corpus_dir,
    corpus_names,
    corpus_sidebar,
    get_corpus,
    pct,
    public,
    settings,
    show_path,
)

st.title("🏋️ Train")
corpus_sidebar()
corpus = get_corpus()
corpus_badge(corpus)
corpus_keys = corpus_names(corpus)
pooled = len(corpus_keys) >= 2


@st.cache_data(show_spinner=False, max_entries=64)
def throughput(arch: str, activation: str, width: float, batch: int, device: str,
               precision: str = "auto") -> float:
    # A small batch and one timed step keep the page responsive (< 1 s even for vgg2d on a
    # busy CPU); the figure is an estimate and is labelled as one.
    return estimate_throughput(arch, {"activation": activation, "width": width},
                               batch_size=min(batch, 16), device=device, steps=1,
                               precision=precision)


@st.cache_data(show_spinner=False, max_entries=16)
def split_sizes(data: str, n: int, protocol: str, seed: int, test_corpus: str,
                _manifest) -> dict:
    s = make_split(_manifest, protocol, seed=seed, test_corpus=test_corpus or None)
    return {"train": len(s.train), "val": len(s.val), "test": len(s.test),
            "description": s.description}


def feature_settings(n_mels: int, n_mfcc: int, hop: int, fs2_norm: str = "none",
                     top_db: float = 80.0) -> dict:
    """Only what differs from the seeds' config; a shorter hop keeps the 5-s window."""
    out = {k: v for k, v in (("n_mels", n_mels), ("n_mfcc", n_mfcc), ("hop_length", hop))
           if v != {"n_mels": 128, "n_mfcc": 20, "hop_length": 512}[k]}
    if hop != 512:
        out["fs2_frames"] = int(round(216 * 512 / hop))
    if fs2_norm != "none":
        out["fs2_norm"] = fs2_norm
    if top_db != 80:
        out["top_db"] = float(top_db)
    return out


FS2_NORM_LABELS = {
    "none": "None (the seeds' log-mel)",
    "denoise": "Noise floor removed",
    "utterance": "Per-utterance channel normalisation",
    "lowpass": "Bands above 8 kHz silenced",
}


PROTOCOL_LABELS = {
    "speaker": "Speaker-independent (honest)",
    "random": "Random 70/30 (seed notebook; leaks speakers)",
    "loco": "Leave one corpus out (test on a corpus never seen in training)",
}

names = list_models()
c1, c2 = st.columns([2, 1])
archs = c1.multiselect("Architectures (each becomes a run; runs queue one after another)",
                       names, default=["lenet2d"], key="archs",
                       format_func=lambda n: f"{n} — {describe(n)['display_name']}")
activation = c2.selectbox("Activation", ["relu", "silu", "elu"], key="activation",
                          help="The PyTorch seed compared these three.")
c1, c2, c3, c4 = st.columns(4)
lr = c1.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], value=1e-3, key="lr")
epochs = c2.number_input("Epochs (0 = seed default: 30 for 1D, 20 for 2D)", 0, 300, 0,
                         key="epochs")
batch = c3.select_slider("Batch size", [16, 32, 64, 128, 256], value=64, key="batch")
width = c4.select_slider("Width ×", [0.5, 1.0, 1.5, 2.0, 4.0], value=1.0, key="width",
                         help="Channel multiplier; >1 for a GPU.")
c1, c2, c3 = st.columns(3)
protocols = ["speaker", "random"] + (["loco"] if pooled else [])
if st.session_state.get("split") not in protocols:  # e.g. loco chosen, then one corpus
    st.session_state.pop("split", None)
split = c1.radio("Split protocol", protocols, format_func=PROTOCOL_LABELS.get, key="split",
                 help=None if pooled else "Leave one corpus out needs a pool of at least two "
                 "corpora (several folders separated by commas in the sidebar).")
test_corpus = ""
if split == "loco":
    test_corpus = c1.selectbox("Test corpus (held out entirely)", list(corpus_keys),
                               key="test_corpus", format_func=lambda k: corpus_keys.get(k, k),
                               help="Every six-emotion clip of this corpus is the test set; "
                                    "the other corpora train, with validation speakers "
                                    "taken from each.")
seed = c2.number_input("Seed", 0, 10_000, 0, key="seed",
                       help="Seeds the weights, batch order and augmentation. The split "
                            "uses its own seed (0), so runs with different seeds share one "
                            "split.")
devices = ["auto", "cpu"] + (["cuda"] if "CUDA" in device_description() else [])
device = c3.selectbox("Device", devices, key="device", help=f"auto = {device_description()}")
precision = c3.selectbox(
    "Precision", list(PRECISIONS), key="precision",
    format_func={"auto": "auto (float16 on CUDA, float32 on CPU)", "bf16": "bfloat16 (mixed)",
                 "fp32": "float32"}.get,
    help="The arithmetic of the training steps; validation, test and the saved weights stay "
         "float32. bfloat16 is about twice as fast on CPUs with bfloat16 instructions "
         "(AVX512-BF16 or AMX)" + (" — this one has them" if cpu_has_bf16() else
                                   " — this one has not, so it would be slower here")
         + ", and runs on NVIDIA GPUs from the Ampere generation on; the README compares "
           "the accuracy.")
precision_note = precision_problem(precision, device)
if precision_note:
    c3.warning(precision_note, icon="⚠️")
nproc = c3.number_input("Processes / GPUs", 1, 64, 1, key="nproc",
                        help="Distributed data-parallel training (torchrun): one process per "
                             "GPU, or several CPU processes (gloo). The batch size stays the "
                             "global batch, split among them. Several machines: see the "
                             "README (python -m ser train --nnodes …).")
balance = c3.checkbox("Balance corpora", False, key="balance", disabled=not pooled,
                      help="Every corpus weighs the same in the training batches, however "
                           "many clips it has (and inside a corpus every emotion does). "
                           + ("" if pooled else "Needs a pool of at least two corpora."))
speaker_batches = c3.checkbox(
    "One speaker per batch", False, key="speaker_batches",
    help="Every training batch holds clips of a single speaker, so the BatchNorm layers "
         "learn to normalise by one voice's statistics, as calibrating to a voice on the "
         "Predict page does. Not with balanced corpora or several processes.")
adversary = c3.number_input(
    "Hide the corpus (adversarial weight)", 0.0, 2.0, 0.0, 0.1, key="adversary",
    disabled=not pooled,
    help="Corpus-adversarial training: a small classifier learns to tell which corpus a "
         "clip came from, and the model is pushed the other way, towards features that do "
         "not show the corpus (its microphone, room, actors' style), so it cannot use the "
         "corpus as a shortcut to the emotion. The weight ramps up from 0 over the run; "
         "0 = off. " + ("" if pooled else "Needs a pool of at least two corpora."))
has_votes = "human_vote" in corpus.manifest and bool(
    corpus.manifest["human_vote"].fillna("").astype(str).ne("").any())
vote_weight = c3.number_input(
    "Weight of clips the raters did not hear as meant", 0.05, 1.0, 1.0, 0.05,
    key="vote_weight", disabled=not has_votes,
    help="CREMA-D's crowd raters named the emotion they heard in each clip's voice alone; "
         "for about half the clips it was not the emotion the actor meant (most were heard "
         "as neutral). Below 1, those clips are drawn this many times as often as the ones "
         "the raters heard as meant; every emotion and corpus keeps its share of the "
         "draws. 1 = every clip alike. Measured on voices from other corpora: see the "
         "README. " + ("" if has_votes else "Needs the raters' votes (CREMA-D's "
                       "summaryTable.csv beside its audio)."))
st.markdown("**Augmentation and regularisation**")
c = st.columns(5)
noise = c[0].checkbox("White noise copy", True, key="noise",
                      help="The seed's noise-augmented copy of every training clip "
                           "(factor 0.01).")
pitch = c[1].checkbox("Pitch shift", False, key="pitch",
                      help="The copy is also shifted in pitch (and formants), by up to the "
                           "range below.")
pitch_range = c[1].number_input("± semitones", 0.5, 12.0, 2.0, 0.5, key="pitch_range",
                                disabled=not pitch,
                                help="Each copy's shift is drawn uniformly in this range; "
                                     "the shipped models used ±2.")
stretch = c[2].checkbox("Time stretch", False, key="stretch",
                        help="The copy is also sped up or slowed down by up to 10 %.")
channel = c[3].checkbox("Recording chain", False, key="channel",
                        help="The copy also goes through a random microphone, room and "
                             "line: EQ, band limits (a phone band one time in four), "
                             "reverberation, μ-law companding and background noise at "
                             "5–30 dB SNR, so the model hears the same emotion through "
                             "chains it will meet in use.")
copies = c[4].number_input("Copies per clip", 1, MAX_COPIES, 1, key="copies",
                           help="How many augmented copies of each training clip (each "
                                "drawn anew) when noise, pitch, stretch or the recording "
                                "chain is on.")
c = st.columns(5)
specaug = c[0].checkbox("SpecAugment", False, key="specaug",
                        help="Masks mel bands and frames (2D input).")
mixup = c[1].checkbox("Mixup", False, key="mixup")
shift = c[2].checkbox("Band/time shift", False, key="shift",
                      help="Moves each spectrogram up or down by up to 4 mel bands and "
                           "rotates it in time by up to a quarter (2D input).")
rfloor = c[4].checkbox("Random floor", False, key="random_floor",
                       help="Each training log-mel image is clipped at its own floor, "
                            "drawn between 30 dB below its peak and the feature floor, so "
                            "how quiet a recording's background is stops being a reliable "
                            "cue; prediction keeps the full range (2D input; not with "
                            "speaker normalisation).")
patience = c[3].number_input("Early-stop patience", 0, 50, 8, key="patience",
                             help="Epochs without a better validation UAR; 0 = off.")
c = st.columns([3, 2, 2])
schedule = c[0].radio("Learning-rate schedule", ["none", "cosine", "plateau"], horizontal=True,
                      key="schedule")
readout_l2 = c[2].number_input(
    "Solve the read-out in one step (L2 strength)", 0.0, 1e6, 0.0, 10.0, key="readout_l2",
    help="For voicelin (one linear layer on the voice vectors): instead of epochs of Adam, "
         "the layer is solved at once as a logistic regression over all training clips "
         "(L-BFGS), with this L2 penalty on its weights (scikit-learn's 1/C). Learning "
         "rate, schedule and patience do not apply. 0 = off.")
swa = c[1].number_input(
    "Average the last N epochs (SWA)", 0, 50, 0, key="swa",
    help="Stochastic weight averaging: the weights at the end of the last N epochs are "
         "averaged (BatchNorm statistics measured again on the training clips). The average "
         "replaces the best epoch only if its validation UAR is higher; the run's card says "
         "which won. 0 = off; at most the run's epochs.")
with st.expander("Feature settings (default: the seeds' FS1/FS2)"):
    c = st.columns(3)
    n_mels = c[0].selectbox("Mel bands", [128, 80, 64], key="n_mels",
                            help="Rows of the log-mel image (FS2) and of FS1's mel block.")
    n_mfcc = c[1].selectbox("MFCCs", [20, 13, 40], key="n_mfcc",
                            help="MFCC coefficients in FS1 (its length follows).")
    hop = c[2].selectbox("Hop (samples at 22.05 kHz)", [512, 220], key="hop",
                         help="512 ≈ 23 ms (seed); 220 ≈ 10 ms, a speech front end. "
                              "Frames per 5-s window follow.")
    top_db = st.selectbox(
        "Log-mel floor (dB below the clip's peak)", [80, 40, 30], key="top_db",
        format_func=lambda v: f"{v} dB" + (" (seed)" if v == 80 else ""),
        help="Everything quieter is set to the floor. 30 dB hides how far a recording's "
             "background noise sits below the voice — in CREMA-D that gap follows the "
             "emotion, so a clean recording looks 'angry'. Measured: unseen corpora up, "
             "CREMA-D's own test down (README, cross-corpus).")
    fs2_norm = st.selectbox(
        "Log-mel normalisation (2D models)", list(FS2_NORM_LABELS), key="fs2_norm",
        format_func=FS2_NORM_LABELS.get,
        help="Noise floor removed: each mel band's steady background noise is subtracted, "
             "so pauses fall to the floor whatever the room. Per-utterance: each band's "
             "mean over the clip is removed, i.e. what a microphone, room or codec adds to "
             "every frame. Both measured worse on unseen corpora than none; a 30-dB floor "
             "did better (README, cross-corpus). Bands above 8 kHz silenced: every clip "
             "looks as if recorded at CREMA-D's 16 kHz, so a pool of corpora cannot be told "
             "apart by its top bands; measured worse on never-heard SAVEE, EMOVO and TESS "
             "(README, cross-corpus).")
    spk_norm = st.checkbox(
        "Speaker normalisation", False, key="speaker_norm",
        help="Standardises each log-mel image (2D models) by its speaker's own statistics "
             "(per-band mean and spread over the speaker's clips); voice models subtract the "
             "speaker's mean voice vector instead. Held-out speakers give "
             "10 enrolment clips each, which are not scored; on the Predict page such a "
             "model needs a few takes of the visitor's voice first.")
    if spk_norm and top_db != 80:
        st.warning("Measured with the 30-dB floor, leave-TESS-out: a log-mel floor and "
                   "speaker normalisation do not add up. Each alone lifted never-heard TESS "
                   "(47 % and 54 % UAR); together the model fell to 29 % with over half "
                   "the clips given one label (README, Calibrating to a voice).")
with st.expander("Distillation (learn from trained models' answers)"):
    teacher_options = ["ensemble", *list_pretrained()]
    teachers = st.multiselect(
        "Teachers", teacher_options, key="teachers",
        format_func=lambda n: "the shipped ensemble (all its members)" if n == "ensemble"
        else n,
        help="Their averaged (calibrated) probabilities on every training clip and copy "
             "become soft targets beside the labels, so one fast model can learn what an "
             "ensemble knows. A teacher must share this run's features and must not have "
             "trained on its validation or test clips (checked before launch).")
    c = st.columns(2)
    distill_w = c[0].slider("Weight of the teachers' term", 0.1, 1.0, 0.5, 0.1,
                            key="distill", disabled=not teachers,
                            help="The labels' cross-entropy gets the rest.")
    distill_t = c[1].slider("Temperature", 1.0, 5.0, 2.0, 0.5, key="distill_temperature",
                            disabled=not teachers,
                            help="Softens both distributions, so the teachers' second "
                                 "and third choices carry weight too.")
    heard_only = st.checkbox(
        "Teachers answer only for corpora they trained on", False, key="distill_heard",
        disabled=not teachers,
        help="In a pool, a teacher that never heard a corpus mostly passes on its own "
             "confusion there (the CREMA-D models call most other voices angry). With this "
             "on, each teacher answers only for clips of its own corpora, and a clip no "
             "teacher heard learns from its label alone.")
with st.expander("Start from a trained model (fine-tune)"):
    starts = {e.name: e for e in all_models() if e.card.arch in archs}
    init_name = st.selectbox(
        "Start from", ["", *starts], key="init",
        format_func=lambda n: n or "random weights (train from scratch)",
        help="The network begins with this model's weights and reads its inputs with this "
             "model's normalisation, then trains on this page's corpus and options: carry a "
             "shipped model over to your own recordings, or a CREMA-D model on to a pool. "
             "It must be the same architecture with the same width, activation and feature "
             "settings, and must not have heard this run's validation or test clips or, "
             "unless the split is random, their speakers (checked at Launch).")
    if init_name and len(archs) > 1:
        st.caption(f"Only the {starts[init_name].card.arch} run starts from it; the other "
                   "architectures start from random weights.")


def _init_for(arch: str) -> str:
    """What ``arch``'s run starts from: a shipped model by name (the card stays portable), a
    finished run by its bundle's path; empty for random weights."""
    entry = starts.get(init_name) if init_name else None
    if entry is None or entry.card.arch != arch:
        return ""
    return entry.name if entry.source == "shipped" else str(entry.bundle)


def make_config(arch: str) -> TrainConfig:
    return TrainConfig(arch=arch, activation=activation, width=float(width), lr=float(lr),
                       epochs=int(epochs) or None, batch_size=int(batch), split=split,
                       test_corpus=test_corpus, balance="corpus" if balance and pooled
                       else "none", seed=int(seed), device=device, noise=noise,
                       batches="speaker" if speaker_batches else "mixed",
                       pitch=pitch, pitch_range=float(pitch_range), stretch=stretch,
                       channel=channel,
                       copies=int(copies),
                       spec_augment=specaug, mixup=0.2 if mixup else 0.0,
                       freq_shift=4 if shift else 0, time_shift=0.25 if shift else 0.0,
                       random_floor=30.0 if rfloor else 0.0,
                       patience=int(patience), schedule=schedule, swa=int(swa),
                       adversary=float(adversary) if pooled else 0.0,
                       vote_weight=float(vote_weight) if has_votes else 1.0,
                       readout_l2=float(readout_l2),
                       data=corpus_dir(),
                       features=feature_settings(n_mels, n_mfcc, hop, fs2_norm, top_db),
                       speaker_norm="speaker" if spk_norm else "none",
                       teachers=",".join(teachers), distill=float(distill_w),
                       distill_temperature=float(distill_t),
                       distill_scope="heard" if heard_only else "all", nproc=int(nproc),
                       init=_init_for(arch), precision=precision)


if split == "random":
    st.warning("The random split puts the **same speakers** (and often the same sentences) "
               "in training and test, so its accuracy measures recognising known voices, not "
               "new ones. It is how the notebook seed reached 94 %. Use it to compare, not to "
               "judge a model.", icon="⚠️")

recipe = make_config(archs[0] if archs else "lenet2d")
try:
    sizes = split_sizes(f"{corpus_dir()}::{corpus.root}", len(corpus.manifest), split,
                        recipe.split_seed, test_corpus, corpus.manifest)
except ValueError as err:
    sizes = None
    st.error(f"This corpus cannot be split that way: {err}")
else:
    st.caption(f"Split on **{corpus.name}**: {sizes['description']} — {sizes['train']:,} "
               f"train / {sizes['val']:,} validation / {sizes['test']:,} test clips.")
    if split == "loco":
        st.caption(f"The test score will be on {corpus_keys.get(test_corpus, test_corpus)}, "
                   "a corpus the model never heard: expect it well below a speaker-"
                   "independent score inside one corpus.")

if archs and sizes:
    waveform_copy = noise or pitch or stretch or channel
    n_train = sizes["train"] * (1 + int(copies) if waveform_copy else 1)
    rows = []
    for a in archs:
        d = describe(a, activation=activation, width=width)
        sps = throughput(a, activation, width, batch, device, precision)
        rows.append({"architecture": a, "input": model_input_space(a).upper(),
                     "parameters": f"{d['total_params']:,}",
                     "MACs / clip": f"{d['macs'] / 1e6:,.1f} M",
                     "≈ samples/s": f"{sps:,.0f}",
                     "≈ time / epoch": f"{n_train / sps:,.0f} s"})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(f"Estimated on {device_description()} from two timed training steps; "
               "the first run also extracts features (cached afterwards).")

# Options that cannot train together are named now, not after Launch.
refused = []
for a in archs:
    try:
        make_config(a).check()
    except ValueError as err:
        refused.append(f"{a}: {err}")
for msg in refused:
    st.error(f"{msg} Change the options to launch.")
allowed = settings().training_allowed
if not allowed:
    st.info("Training is switched off on this public server; the runs below are read-only.")
if st.button("🚀 Launch", type="primary", key="launch",
             disabled=sizes is None or not allowed or bool(refused)):
    if not archs:
        st.error("Choose at least one architecture.")
    else:
        for a in archs:
            try:
                run_id = runs.start(check_init(check_teachers(make_config(a).check())))
            except ValueError as err:
                st.error(f"{a}: {err} Not launched.")
                continue
            st.toast(f"Queued {run_id}")
        st.session_state["watch"] = True

with st.expander("🔬 Launch a study (a grid of runs over seeds that tests a claim)"):
    study_name = st.selectbox("Study", studies.list_studies(), key="train_study",
                              format_func=lambda n: f"{n} — {studies.get_study(n).title}")
    study = studies.get_study(study_name)
    st.caption(f"{study.description} {len(study.cells())} cells × {len(study.seeds)} seeds "
               f"= {len(study.cells()) * len(study.seeds)} runs; {study.schedule}. On "
               f"**{corpus.name}** (the sidebar's corpus), speaker-independent split. Runs "
               "that already exist with the same options are reused, not launched again.")
    study_parallel = st.number_input("Runs at once", 1, 8, 1, key="train_study_parallel")
    counts = studies.progress(studies.plan(study, corpus_dir()))

    # While the study has runs queued or running, its bar follows them every 5 s.
    @st.fragment(run_every=5.0 if counts["running"] or counts["queued"] else None)
    def study_progress():
        now = studies.progress(studies.plan(study, corpus_dir()))
        st.progress(now["finished"] / max(now["total"], 1),
                    text=f"{now['finished']}/{now['total']} finished · {now['running']} "
                         f"running · {now['queued']} queued · {now['missing']} to launch")

    study_progress()
    if st.button("Queue the study", key="train_study_launch",
                 disabled=not allowed or not counts["missing"]):
        try:
            new = studies.launch(study, corpus_dir(), max_parallel=int(study_parallel))
        except ValueError as err:
            st.error(str(err))
        else:
            st.toast(f"Queued {len(new)} run(s) of {study_name}")
            st.session_state["watch"] = True
            st.rerun()
    st.caption("Results and verdicts: the **Studies** page.")

st.divider()
st.subheader("Runs")


def _eta(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


STATE_ICONS = {"queued": "⏳", "running": "🏃", "finished": "✅", "failed": "❌",
               "cancelled": "⏹️"}


def _corpus_of(cfg: dict) -> str:
    """The corpus a run trains on, as the sidebar would name it."""
    data = cfg.get("data")
    if not data:
        return corpus.name if corpus_dir() is None else "the default corpus"
    return ", ".join(part.split("=", 1)[0] if "=" in part else part.rstrip("/").rsplit("/", 1)[-1]
                     for part in str(data).split(","))


def _stage_line(st_: dict, cfg: dict, steps_: list, epochs_: list) -> None:
    """What the run is doing now: its stage, a bar where there is a count, how long ago the
    run last reported."""
    stage = st_.get("stage") or "starting"
    done, total = st_.get("stage_done", 0), st_.get("stage_total", 0)
    age = time.time() - st_["stage_ts"] if st_.get("stage_ts") else None
    since = f" · updated {_eta(age)} ago" if age is not None else ""
    epochs_total = st_.get("epochs") or TrainConfig.from_dict(cfg).resolved_epochs()
    if stage == "training" or stage.startswith("validating"):
        epoch = (steps_[-1]["epoch"] if steps_ else len(epochs_) + 1)
        frac = (epoch - 1 + steps_[-1]["epoch_progress"]) / epochs_total if steps_ else \
            len(epochs_) / epochs_total
        eta = epochs_[-1]["eta_s"] if epochs_ else None
        what = (f"validating epoch {epoch}" if stage.startswith("validating") else
                f"training epoch {epoch}/{epochs_total}"
                + ("" if steps_ and steps_[-1]["epoch"] == epoch else ": first batches"))
        st.progress(min(frac, 1.0), text=f"{what} · ETA {_eta(eta)}{since}")
    elif total:
        st.progress(min(done / total, 1.0), text=f"{stage}: {done:,}/{total:,}{since}")
    else:
        st.caption(f"⏱️ {stage}…{since}")


def run_card(r: dict) -> None:
    st_, cfg, rid = r["status"], r["config"], r["run_id"]
    state = st_["state"]
    with st.container(border=True):
        head, btn = st.columns([5, 1])
        held_out = f" (test: {cfg['test_corpus']})" if cfg.get("test_corpus") else ""
        start = (f" · from `{cfg['init']}`" if cfg.get("init")
                 and not (public() and "/" in cfg["init"]) else "")
        head.markdown(f"{STATE_ICONS[state]} **{cfg['arch']}** · `{rid}` · **{state}** · "
                      f"on **{_corpus_of(cfg)}** · split {cfg['split']}{held_out} · "
                      f"lr {cfg['lr']:g} · {cfg.get('activation') or ''}{start}")
        if state in runs.ACTIVE and allowed and btn.button("Cancel", key=f"cancel-{rid}"):
            runs.cancel(rid)
            st.toast(f"Cancelling {rid}…")
        metrics = runs.metrics(rid)
        epochs_ = [m for m in metrics if m["type"] == "epoch"]
        steps_ = [m for m in metrics if m["type"] == "step"]
        if state == "queued":
            st.caption("⏳ waiting for the run before it to finish (runs go one at a time)")
        if state == "running":
            _stage_line(st_, cfg, steps_, epochs_)
            if steps_:
                c = st.columns(3)
                c[0].metric("samples/s", f"{steps_[-1]['samples_per_s']:,.0f}")
                c[1].metric("step loss", f"{steps_[-1]['loss']:.3f}")
                c[2].metric("device", cfg.get("device", "auto")
                            + (" · bfloat16" if cfg.get("precision") == "bf16" else ""))
        if state == "failed":
            st.error(st_.get("error", "failed"))
        if state in ("finished", "cancelled") and r["report"]:
            rep = r["report"]
            st.markdown(f"Test accuracy **{pct(rep['accuracy'])}**, UAR **{pct(rep['uar'])}**"
                        f", macro-F1 {rep['macro_f1']:.3f} — "
                        f"{rep.get('protocol', {}).get('description', '')}")
        if metrics:
            total = st_.get("epochs") or TrainConfig.from_dict(cfg).resolved_epochs()
            st.plotly_chart(plots.training_curves(metrics, epochs=total), width="stretch",
                            key=f"curve-{rid}-{len(metrics)}")
        if not public():  # the log names server folders
            with st.expander("Log"):
                st.code(runs.log_tail(rid, 15) or "(empty)", language=None)


all_runs = runs.list_runs()
active_ids = [r["run_id"] for r in all_runs if r["status"]["state"] in runs.ACTIVE]
finished = [r for r in all_runs if r["status"]["state"] not in runs.ACTIVE][:4]


# Only while a run is queued or running does this part refresh itself (every 2 s, reading
# only those runs); an idle Train page does no work at all.
@st.fragment(run_every=2.0 if active_ids else None)
def live_runs():
    now_active = []
    for rid in active_ids:
        try:
            r = runs.read_run(rid)
        except (runs.RunError, ValueError):
            continue
        if r["status"]["state"] in runs.ACTIVE:
            now_active.append(rid)
        run_card(r)
    if active_ids and not now_active:
        st.rerun()  # the last active run ended: redraw the page once, then stay idle
    st.caption(f"Last refresh {time.strftime('%H:%M:%S')}"
               + (" · refreshing every 2 s while a run is active" if active_ids else ""))


if not all_runs:
    st.info("No runs yet. Choose an architecture above and launch.")
live_runs()
for r in finished:
    run_card(r)
c1, c2 = st.columns([5, 1])
c1.caption(f"Runs live in {show_path(runs.root())}; they keep going if you leave this page "
           "or close the browser.")
if c2.button("↻ Check for runs", key="refresh_runs",
             help="Runs started from the command line appear after a refresh."):
    st.rerun()
