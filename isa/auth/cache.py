"""A bounded, short-lived memory of principals recently confirmed active, so a JWT isn't a query per request.

The TTL is the revocation bound: a user disabled (or a key revoked) in the database is refused by every
node at most `ttl` seconds later, even while this cache is warm. Only positive results are kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class LiveCache:
    def __init__(self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def fresh(self, key: Hashable) -> bool:
        """True while `key` was confirmed active less than `ttl` seconds ago."""
        until = self._until.get(key)
        if until is None:
            return False
        if self.clock() >= until:
            del self._until[key]
            return False
        return True

    def remember(self, key: Hashable) -> None:
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        self._until[key] = self.clock() + self.ttl
        self._until.move_to_end(key)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def forget_user(self, user_id: str) -> None:
        """Drop every entry of `user_id` (keys are (user_id, ...) tuples)."""
        for key in [k for k in self._until if isinstance(k, tuple) and k and k[0] == user_id]:
            del self._until[key]

    def clear(self) -> None:
        self._until.clear()
