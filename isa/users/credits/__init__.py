"""Credits: the one public face of the credit ledger (balances and `user_credit_transactions`).

Other domains (model, mcp, agent) charge and read credits only through these names. The functions take the
caller's connection so a charge joins the caller's transaction (a usage row and its charge commit together).
"""

from __future__ import annotations

from isa.users.credits.ledger import InsufficientCredits, balance, consume, credit, credit_once
from isa.users.credits.store import LedgerEntry

__all__ = ["InsufficientCredits", "LedgerEntry", "balance", "consume", "credit", "credit_once"]
