"""Helpers for asking the model node (as the calling user) from tools and services on other nodes."""
