"""Hostile and broken inputs, generated at test time (no binary files are committed)."""
