"""Studies: grids of runs over seeds that test the seeds' claims, with a verdict per claim.

Shipped reports (``models/studies/*.json``) and live ones (from the runs of the corpus in
the sidebar) are drawn the same way; the numbers and verdicts come from `ser.studies`.
"""

import pandas as pd
import streamlit as st

from ser import plots, runs, studies
from ui.state import corpus_dir, corpus_sidebar, public

ICONS = {"confirmed": "✅", "not confirmed": "❌", "within noise": "〰️", "incomplete": "⏳"}

st.title("🔬 Studies")
corpus_sidebar()
st.caption("Each study trains a small grid of models, every cell with several seeds, and "
           "tests one of the PyTorch seed's claims against the spread between seeds. A single "
           "run is never a finding.")

data = corpus_dir()
shipped = studies.shipped_reports()
all_runs = runs.list_runs()
live = {}
for name in studies.list_studies():
    rep = studies.report(studies.get_study(name), data, all_runs)
    if rep["progress"]["total"] > rep["progress"]["missing"]:
        live[name] = rep

if not shipped and not live:
    st.info("No study has been shipped or run yet. Run one from the command line, e.g.\n\n"
            "`python -m ser study run activation --data /path/to/CREMA-D --threads 1`\n\n"
            "(or from the Train page, *Launch a study*), follow it with `python -m ser study "
            "status activation`, then `python -m ser study ship activation --data "
            "/path/to/CREMA-D` writes `models/studies/activation.json`, which this page "
            "shows without the runs.")
    st.dataframe(pd.DataFrame([
        {"study": n, "question": s.title, "runs": len(s.cells()) * len(s.seeds),
         "schedule": s.schedule}
        for n in studies.list_studies() for s in [studies.get_study(n)]]),
        hide_index=True, width="stretch")
    st.stop()

names = [n for n in dict.fromkeys(list(shipped) + list(live))]
name = st.selectbox("Study", names, key="study_name",
                    format_func=lambda n: f"{n} — {(shipped.get(n) or live[n])['title']}")
sources = (["shipped"] if name in shipped else []) + (["live runs"] if name in live else [])
source = st.radio("Numbers from", sources, horizontal=True, key="study_source",
                  help="shipped: models/studies/<name>.json; live runs: the runs folder, "
                       "for the corpus chosen in the sidebar.") if len(sources) > 1 \
    else sources[0]
rep = shipped[name] if source == "shipped" else live[name]

st.subheader(rep["title"])
st.markdown(rep["description"])
st.caption(f"**Protocol:** {studies.protocol_sentence(rep)}. Seeds: "
           f"{', '.join(map(str, rep['seeds']))}.")
prog = rep["progress"]
active = source == "live runs" and (prog["running"] or prog["queued"])


# Live runs still going: the bar follows them every 5 s (the table on ↻ Refresh).
@st.fragment(run_every=5.0 if active else None)
def study_progress():
    if source == "shipped":
        if prog["finished"] < prog["total"]:
            st.caption(f"Shipped with {prog['finished']} of {prog['total']} runs finished "
                       f"({rep.get('created', '')[:10]}).")
        return
    now = studies.progress(studies.plan(studies.get_study(name), data)) if active else prog
    if now["finished"] < now["total"]:
        st.progress(now["finished"] / max(now["total"], 1),
                    text=f"{now['finished']}/{now['total']} runs finished · {now['running']} "
                         f"running · {now['queued']} queued · {now['missing']} missing")


study_progress()

st.markdown("**Verdicts**")
for claim in rep["claims"]:
    st.markdown(f"{ICONS.get(claim['verdict'], '')} **{claim['text']}** — "
                f"*{claim['verdict']}* ({claim['metric_name']}). {claim['detail']}")
st.caption(f"Noise rule: {rep['noise_rule']}. The claimed best must beat the best other "
           f"setting by more than noise to be *confirmed*; *not confirmed* means another "
           f"setting is better by more than noise. Cells with fewer than "
           f"{rep['min_seeds']} finished seeds are incomplete and get no verdict.")

metric = st.radio("Metric", list(studies.METRICS), horizontal=True, key="study_metric",
                  format_func=studies.METRICS.get)
st.plotly_chart(plots.study_chart(rep, metric, title=f"{studies.METRICS[metric]}: mean ± "
                                  "std over seeds"), width="stretch", key=f"study-{name}")


def mean_std(stat: dict) -> str:
    if stat["mean"] is None:
        return "–"
    sd = f" ± {100 * stat['std']:.1f}" if stat["std"] is not None else ""
    return f"{100 * stat['mean']:.1f}{sd}"


st.dataframe(pd.DataFrame([{
    "cell": c["label"], "options": c.get("options", c["label"]),
    "seeds": f"{c['n_seeds']}/{c['planned_seeds']}",
    "test accuracy %": mean_std(c["test_accuracy"]), "test UAR %": mean_std(c["test_uar"]),
    "val UAR %": mean_std(c["val_uar"]), "val accuracy %": mean_std(c["val_accuracy"]),
    "seed write-up %": "–" if c["seed_reported"] is None else
    f"{100 * c['seed_reported']:.1f}",
    "status": "complete" if c["complete"] else "incomplete (< 2 seeds)"}
    for c in rep["cells"]]), hide_index=True, width="stretch")
st.caption(f"Mean ± sample standard deviation over the finished seeds. Seed write-up: "
           f"{rep['seed_source']}.")

st.markdown("**Rerun**")


def command(text: str) -> str:
    return text if not public() or " --data " not in text else \
        text.split(" --data ")[0] + " --data DIR" + (" --max-parallel 4"
                                                      if "--max-parallel" in text else "")


st.caption(f"This schedule ({rep['schedule']}):")
st.code(command(rep["command"]) + ("" if name.endswith("-full") else " --threads 1"),
        language="bash")
st.caption("Full length (the seed's epochs; a GPU is advisable):")
st.code(command(rep["full_command"]), language="bash")
st.caption(f"The table above, from the command line: `python -m ser study report {name}`; "
           f"`python -m ser study ship {name}` writes it to models/studies/{name}.json.")
if name in live and st.button("↻ Refresh", key="study_refresh"):
    st.rerun()
