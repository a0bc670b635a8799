"""Results: every trained model on one table, cross-corpus scores, charts by architecture,
errors clip by clip."""

from pathlib import Path

import streamlit as st

from ser import config, crosscorpus, plots
from ser.calibration import reliability_for
from ser.corpora import list_corpora
from ser.metrics import HUMAN_VOICE_RULE
from ser.zoo import HUMAN_COLUMN, all_models, protocol_groups, ranked, table
from ui import insight
from ui.state import corpus_sidebar, get_corpus, pct, percent_columns

SHARES = ("accuracy", "UAR", "macro-F1", "precision", HUMAN_COLUMN)

st.title("📈 Results")
corpus_sidebar()
entries = all_models()
if not entries:
    st.info("No trained models yet: shipped bundles live in `models/`, and runs launched on "
            "the Train page appear here when they finish.")
    st.stop()

by_name = {e.name: e for e in entries}
df = ranked(table(entries))
first = ["model", "accuracy", "UAR", "macro-F1", HUMAN_COLUMN, "split", "data"]
df = df[first + [c for c in df.columns if c not in first]]
st.caption("Every number is on the model's own held-out test clips; the split column names "
           "the protocol and the data column the corpus. Compare models only within one "
           "protocol and corpus: the table lists the speaker-independent models first, best "
           f"first. *{HUMAN_COLUMN}*: the share of the model's test clips where "
           f"{HUMAN_VOICE_RULE}.")
shown, percent_config = percent_columns(df, SHARES)
st.dataframe(shown, hide_index=True, width="stretch", column_config=percent_config)
st.download_button("Download table (CSV)", df.to_csv(index=False).encode(), "ser-results.csv",
                   "text/csv")

# One view at a time (a radio, not tabs): only the charts in view are built and drawn.
view = st.radio("Show", ["Compare models", "Cross-corpus"], horizontal=True,
                key="results_view", help="Cross-corpus: how models trained on one corpus do "
                "on the others.")
if view == "Cross-corpus":
    st.subheader("Cross-corpus")
    scored = {e.name: (e, cells) for e in entries if (cells := crosscorpus.read(e.folder))}
    corpus_name = {spec.key: spec.name for spec in list_corpora()}
    if not scored:
        st.info("No model has cross-corpus scores yet. Score models on other corpora from the "
                "command line, e.g. `python -m ser crosscorpus MODEL --corpus tess=/path/to/tess "
                "--corpus savee=/path/to/savee --write` (MODEL: a shipped name, model folder or "
                "bundle); `--write` stores `cross_corpus.json` beside the model and this section "
                "draws it.")
    else:
        st.caption("UAR of each model (rows: the model, its training data and split) on each "
                   "test corpus (columns). **Unseen**: every six-emotion clip of a corpus that had "
                   "no clip in the model's training data. **Held-out speakers**: the corpus was "
                   "in training, and only its test speakers of the model's own split are scored. "
                   "Chance is 1/6 ≈ 17 %; ⚠ marks a cell where one label took ≥ 35 % of the "
                   "predictions (the model collapsed onto it for that corpus). Cells marked "
                   "*enrolment clips/speaker* belong to speaker-normalised models: each test "
                   "speaker first gave that many clips (not scored) for its voice statistics.")
        rows = {f"{name} · {e.card.corpus}, {e.card.protocol_name}": cells
                for name, (e, cells) in scored.items()}
        st.plotly_chart(plots.crosscorpus_matrix(rows, corpus_name), width="stretch",
                        key="xc_matrix")
        xc_model = st.selectbox("Model for the per-corpus detail", list(scored), key="xc_model")
        xc_entry, xc_cells = scored[xc_model]
        st.caption(f"{xc_model}: trained on {xc_entry.card.corpus} "
                   f"({xc_entry.card.protocol_caption()}); one row per test corpus, with how it "
                   "was scored.")
        st.plotly_chart(plots.crosscorpus_recall(xc_cells, corpus_name), width="stretch",
                        key="xc_recall")
        st.plotly_chart(plots.predicted_share_bars(xc_cells, corpus_name), width="stretch",
                        key="xc_share")
        st.caption("Above: the share of each test corpus's clips given each label, largest "
                   "first. A model that spreads its answers like the six balanced classes keeps "
                   "the first segment near the 1/6 line; past the red 35 % line it answers one "
                   "emotion for most clips of that corpus, whatever was said.")
    st.stop()


st.subheader("By protocol and data")
groups = protocol_groups(df)
counts = df.groupby(["split", "data"]).size()
label = st.selectbox("Protocol and data for the charts", groups, key="group",
                     format_func=lambda g: f"{g[0]} — {g[1]} ({counts[g]} "
                     f"model{'s' if counts[g] != 1 else ''})")
metric = st.radio("Metric", ["accuracy", "UAR", "macro-F1"], horizontal=True, key="metric")
gdf = ranked(df[(df["split"] == label[0]) & (df["data"] == label[1])], metric)
st.plotly_chart(plots.accuracy_by_architecture(gdf, metric, subtitle=f"{label[0]}, "
                                               f"{label[1]}"), width="stretch",
                key="by_architecture")

names = list(gdf["model"])  # best first
chosen = st.multiselect("Models to compare in detail (best three of this group chosen)",
                        names, default=names[:3], key=f"chosen::{label}")
sel = [by_name[n] for n in chosen]
if not sel:
    st.stop()

with_reports = [e for e in sel if e.report.get("confusion_matrix")]
# One detail view at a time: every chart drawn costs the browser time on each visit.
detail = st.radio("Detail", ["Confusion matrices", "Learning curves", "Per-class F1",
                             "Test accuracy by slice"], horizontal=True, key="detail")
picked = None  # (model entry, [(true, predicted), ...]) from a click or box selection
if detail == "Confusion matrices" and with_reports:
    # One matrix at a time (a chooser, not three side by side): the per-class F1 view
    # compares the models; this one is for reading one model's errors and its clips.
    cm_name = st.radio("Confusion matrix of", [e.name for e in with_reports], horizontal=True,
                       key="cm_model") if len(with_reports) > 1 else with_reports[0].name
    e = next(e for e in with_reports if e.name == cm_name)
    st.caption(e.card.protocol_caption())
    ev = st.plotly_chart(plots.confusion(e.report["confusion_matrix"], title=""),
                         width="stretch", on_select="rerun", selection_mode=("points", "box"),
                         key=f"cm-{e.name}")
    cells = plots.confusion_cells(ev)
    if cells:
        picked = (e, cells)
    st.caption("Click a cell (or drag a box over several) to list and play its test clips "
               "below; double-click to clear.")
elif detail == "Learning curves":
    curves = {e.name: e.curves for e in sel if e.curves}
    if curves:
        key = st.radio("Curve", ["val_uar", "val_accuracy", "train_loss", "val_loss"],
                       horizontal=True, key="curve")
        st.plotly_chart(plots.overlaid_curves(curves, key), width="stretch")
    else:
        st.info("None of these models kept its training log.")
elif detail == "Per-class F1" and with_reports:
    st.plotly_chart(plots.per_class_f1({e.name: e.report["per_class"]
                                        for e in with_reports}), width="stretch")
elif with_reports:
    slicers = [by for by in ("corpus", "intensity", "sentence", "sex")
               if any(len(e.report.get("slices", {}).get(by, {})) > 1 for e in with_reports)]
    if slicers:
        by = st.radio("Test accuracy by", slicers, horizontal=True, key="slice_by")
        st.plotly_chart(plots.slice_bars({e.name: e.report.get("slices", {})
                                          for e in with_reports}, by),
                        width="stretch", key="slices")
    else:
        st.info("These models' reports have no slices (speaker sex, intensity, sentence).")

st.subheader("Honest confidence")
st.caption("Reliability on each model's test clips: of the clips given ~70 % confidence, ~70 % "
           "should be right (the diagonal). Calibration (temperature scaling) was fitted on the "
           "validation clips only; ECE = expected calibration error.")
show_reliability = st.toggle("Show the reliability diagrams", key="show_reliability")
rel_cols = st.columns(max(1, min(3, len(sel)))) if show_reliability else []
for col, e in zip(rel_cols, sel[:3]):
    with col:
        try:
            r = reliability_for(e)
        except ValueError as err:
            st.info(f"{e.name}: {err}")
            continue
        st.plotly_chart(plots.reliability_diagram(
            r["curves"], title=f"{e.name}: {r['n']} {r['part']} clips"), width="stretch",
            key=f"rel-{e.name}")
        if r["calibration"] is None:
            st.caption("Not calibrated: run `python -m ser calibrate --write`.")


st.subheader("Clips behind a confusion cell")
if picked is None and with_reports:
    c1, c2, c3 = st.columns(3)
    model_name = c1.selectbox("Model", [e.name for e in with_reports], key="cell_model")
    true = c2.selectbox("True emotion", config.LABELS, key="cell_true")
    pred = c3.selectbox("Predicted emotion", config.LABELS, index=1, key="cell_pred")
    picked = (next(e for e in with_reports if e.name == model_name), [(true, pred)])
    st.caption("Or click a cell of a confusion matrix above.")
if picked:
    e, cells = picked
    preds = e.predictions("test")
    if preds is None:
        st.info("This model shipped without per-clip predictions.")
    else:
        wanted = set(cells)
        cell = preds[[(t, p) in wanted for t, p in zip(preds["true"], preds["predicted"])]]
        what = " and ".join(f"**{t}** predicted **{p}**" for t, p in cells[:4]) + (
            f" and {len(cells) - 4} more cells" if len(cells) > 4 else "")
        if len(cells) == 1:
            (true, pred), = cells
            st.markdown(f"**{e.name}**: {len(cell)} test clips that are **{true}** and were "
                        f"predicted **{pred}** ({e.card.protocol_caption()})")
        else:
            st.markdown(f"**{e.name}**: {len(cell)} test clips: {what} "
                        f"({e.card.protocol_caption()})")
        corpus = get_corpus()
        where = dict(zip(corpus.manifest["clip"], corpus.manifest["path"]))
        show = [c for c in ("clip", "true", "predicted", "speaker", "sentence", "intensity",
                            "confidence", "human_vote") if c in cell]
        table_, conf = percent_columns(cell[show], ["confidence"])
        st.dataframe(table_, hide_index=True, width="stretch", column_config=conf)
        if len(cell) and not any(where.get(c) for c in cell.get("clip", [])):
            st.caption("Audio players appear when the corpus these clips come from is "
                       "selected in the sidebar.")
        heard = {}  # clip name → local path, for the clips whose audio is here
        for _, r in cell.iterrows():
            local = r.get("path")  # runs record the local path; shipped models only the clip
            clip = r.get("clip") or Path(str(local)).stem
            path = where.get(clip) or (local if local and Path(str(local)).exists() else None)
            if path:
                heard[clip] = (path, r["confidence"])
        if heard:
            st.markdown(f"**What {e.name} heard**")
            none = "(choose a clip)"
            opened = st.selectbox("Play a clip of this cell and look inside the model",
                                  [none, *heard], key=f"heard::{e.name}",
                                  format_func=lambda c: c if c == none else
                                  f"{c} — confidence {pct(heard[c][1])}",
                                  help="Plays the clip and draws where the model listened "
                                       "(Grad-CAM on the spectrogram, or which FS1 values it "
                                       "used); the layers and receptive fields open on the "
                                       "Architectures page.")
            if opened != none:
                st.audio(open(heard[opened][0], "rb").read())
                samples = insight.corpus_clip_samples(heard[opened][0])
                if samples is not None:
                    insight.attribution_panel(e.name, e.bundle, *samples,
                                              key=f"heard-{e.name}")
                if st.button("Open this clip in Architectures → Inside the models",
                             key="heard_open"):
                    st.session_state[insight.REQUEST] = {"clip": opened, "model": e.name}
                    st.switch_page("pages/architectures.py")
