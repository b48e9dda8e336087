"""Slow down guessing: too many failed authentications from one address are refused for a while.

Per process and in memory: each server process counts its own failures, which bounds guessing per process without
a shared store. Other addresses are never affected.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from nephelae.errors import RateLimited


class FailureThrottle:
    """At most `limit` failures per address in any `window` seconds; past that, refuse until the oldest expires."""

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        *,
        max_addresses: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.max_addresses, self.clock = limit, window, max_addresses, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise `RateLimited` if `address` has used up its failures."""
        with self._lock:
            if address not in self._failures:  # checking must not grow the table: only failures do
                return
            failures = self._recent(address)
            if len(failures) < self.limit:
                return
            wait = max(math.ceil(failures[0] + self.window - self.clock()), 1)
        raise RateLimited(
            f"too many failed attempts from {address}; wait {wait} s before trying again", retry_after=wait
        )

    def failed(self, address: str) -> None:
        """Count a failed attempt from `address`."""
        with self._lock:
            failures = self._recent(address)
            failures.append(self.clock())
            self._failures.move_to_end(address)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures
