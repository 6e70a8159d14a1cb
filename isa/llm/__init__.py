"""Asking the model node as the calling user: the one client (client.py), its in-process transport
(transport.py, shared by every cross-role client of a role-`all` process) and what is built on it (rerank)."""
