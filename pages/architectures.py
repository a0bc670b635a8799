"""Architectures: layer tables, sizes, diagrams and what makes each design different."""

import pandas as pd
import streamlit as st

from ser import plots
from ser.models import describe, list_models, models_table
from ser.zoo import all_models
from ui.state import corpus_sidebar, pct

st.title("🧱 Architectures")
corpus_sidebar()
st.caption("Every network SER Studio can train. 1D CNNs read FS1 — 169 numbers summarising a "
           "clip (ZCR, RMS, 20 MFCCs, 12 chroma, 7 contrast bands, 128 mel powers); 2D CNNs "
           "read FS2 — a 128 × 216 log-mel image of up to 5 s.")


INPUTS = {"fs1": "FS1: 169-value summary", "fs2": "FS2: 128-band log-mel image",
          "fs1+fs2": "FS1 + FS2"}


@st.cache_data(show_spinner=False)
def overview() -> pd.DataFrame:
    """The architectures as a reader wants them: words for column names, sizes in
    thousands/millions, the input spelled out, SER Studio's own designs first."""
    from ser.zoo import architecture_origin

    t = models_table()
    out = pd.DataFrame({
        "architecture": t["display_name"], "name": t["name"],
        "from": [architecture_origin(n) for n in t["name"]],
        "input": t["input"].map(lambda v: INPUTS.get(v, v)),
        "parameters": t["params"].map(lambda v: f"{v / 1e6:.2f} M" if v >= 1e6
                                      else f"{v / 1e3:.0f} k"),
        "multiply-adds per clip": t["MACs"].map(lambda v: f"{v / 1e6:,.1f} M"),
        "clip length": t["variable_length"].map({True: "any", False: "fixed 5 s"}),
    })
    return out.sort_values(["from", "name"], kind="stable")


@st.cache_data(show_spinner=False, max_entries=64)
def desc(name: str, activation: str) -> dict:
    return describe(name, activation=activation)


st.table(overview(), hide_index=True)  # a table, not a grid: long names are not cut
names = list_models()
c1, c2, c3 = st.columns(3)
a = c1.selectbox("Model A", names, index=names.index("lenet2d") if "lenet2d" in names else 0)
b = c2.selectbox("Model B", ["(none)", *names],
                 index=1 + names.index("ser2d") if "ser2d" in names else 0)
activation = c3.selectbox("Activation", ["relu", "silu", "elu"])
chosen = [a] + ([b] if b != "(none)" else [])
trained = all_models()
cols = st.columns(len(chosen))
for col, name in zip(cols, chosen):
    d = desc(name, activation)
    with col:
        st.subheader(d["display_name"])
        st.caption(f"`{name}` · {d['family']} · input {d['input_shape']} · from the "
                   f"{d['source']}")
        m = st.columns(3)
        m[0].metric("Parameters", f"{d['total_params']:,}")
        m[1].metric("MACs / clip", f"{d['macs'] / 1e6:,.1f} M")
        m[2].metric("Input length", "any" if d["variable_length"] else "fixed",
                    help="Global-pooling models accept clips of any length; models with a "
                         "flatten + dense head need exactly the 169 values or 216 frames.")
        st.markdown(d["summary"])
        st.caption(d["size_note"])
        if d.get("receptive_field"):
            st.caption(f"Receptive field of the convolutional stack: {d['receptive_field']}")
        st.plotly_chart(plots.architecture_diagram(d["layers"], "Layers (width ∝ log "
                                                   "parameters)"),
                        width="stretch", key=f"diag-{name}")
        layers = pd.DataFrame(d["layers"])
        layers["output_shape"] = layers["output_shape"].map(lambda v: " × ".join(map(str, v)))
        st.dataframe(layers.rename(columns={
            "layer": "layer", "type": "type", "output_shape": "output (channels × …)",
            "params": "parameters", "macs": "multiply-adds"}), hide_index=True,
            width="stretch", height=320, column_config={
                c: st.column_config.NumberColumn(format="localized")
                for c in ("parameters", "multiply-adds")})
        mine = [e for e in trained if e.card.arch == name]
        if mine:
            st.markdown("**Trained**")
            for e in mine:
                t = e.scores
                st.markdown(f"- {e.name}: accuracy {pct(t.accuracy if t else None)}, UAR "
                            f"{pct(t.uar if t else None)} — {e.card.protocol_caption()}")
        else:
            st.caption("Not trained yet: launch it from the Train page.")
