"""The portal: one web page at /portal for users and operators, built only on the public HTTP routes.

Plain HTML/CSS/JS from the package (no build step), served with a strict Content-Security-Policy. The page
holds no power of its own: every action it offers is a request any client could make with the same key.
"""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.portal import routes

__all__ = ["register"]


def register(builder: AppBuilder) -> None:
    builder.add_routes(*routes.ROUTES)
