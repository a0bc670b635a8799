"""SER Studio — entry point: `streamlit run Home.py`.

Registers the pages; each page draws the shared sidebar (corpus chooser) itself through
`ui.state.corpus_sidebar`, so it works the same however it is opened.
"""

import streamlit as st

st.set_page_config(page_title="SER Studio", page_icon="🎙️", layout="wide")

PAGES = [
    st.Page("pages/welcome.py", title="Home", icon="🏠", default=True),
    st.Page("pages/dataset.py", title="Dataset", icon="📊"),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/results.py", title="Results", icon="📈"),
    st.Page("pages/studies.py", title="Studies", icon="🔬"),
    st.Page("pages/predict.py", title="Predict", icon="🎧"),
    st.Page("pages/architectures.py", title="Architectures", icon="🧱"),
]

st.navigation(PAGES).run()
