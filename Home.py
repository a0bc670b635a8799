"""SER Studio — entry point: `streamlit run Home.py`.

Registers the pages and draws what every page shares (the corpus chooser in the sidebar).
"""

import streamlit as st

st.set_page_config(page_title="SER Studio", page_icon="🎙️", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/dataset.py", title="Dataset", icon="📊"),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/results.py", title="Results", icon="📈"),
    st.Page("pages/predict.py", title="Predict", icon="🎧"),
    st.Page("pages/architectures.py", title="Architectures", icon="🧱"),
]

page = st.navigation(PAGES)
from pages.common import corpus_sidebar  # noqa: E402  (after set_page_config)

corpus_sidebar()
page.run()
