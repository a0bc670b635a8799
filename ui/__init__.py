"""Streamlit helpers shared by the pages (not pages themselves)."""
