"""Asking the model node as the calling user: the one client (client.py) and what is built on it (rerank)."""
