"""Sign-in attempts per client address: decides when one computer has tried too many
wrong passwords, across every account, and must wait.

The lockout in accounts.py stops guessing at one account; this stops one address
guessing at many (ten tries at each name in turn). `[web] address_attempts` wrong
sign-ins from one address within `[web] lockout_minutes` refuse every further sign-in
from it, right password or not, until the oldest of them is that old; 0 turns it off.
The address is the client's as uvicorn sees it: behind the reverse proxy, the
X-Forwarded-For of a proxy in `[web] trusted_proxies`, so the proxy must be listed there
or every officer counts as the proxy's one address. Counted in the console's memory: a
restart forgets it, while the accounts' lockouts, in the database, stay.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from threading import Lock

# Addresses remembered at most; the longest quiet are forgotten first.
MAX_ADDRESSES = 10_000


class AddressThrottle:
    def __init__(self, limit: int, window: timedelta) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = Lock()

    def _recent(self, address: str, now: datetime) -> deque[datetime]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return failures

    def blocked_until(self, address: str, now: datetime) -> datetime | None:
        """When ADDRESS may try again, or None when it may now."""
        if not self.limit:
            return None
        with self._lock:
            failures = self._recent(address, now)
            if len(failures) < self.limit:
                return None
            return failures[-self.limit] + self.window

    def failed(self, address: str, now: datetime) -> bool:
        """Count a wrong sign-in from ADDRESS; True when this one reaches the limit."""
        if not self.limit:
            return False
        with self._lock:
            failures = self._recent(address, now)
            failures.append(now)
            self._failures.pop(address, None)
            self._failures[address] = failures  # the most recently active last
            while len(self._failures) > MAX_ADDRESSES:
                del self._failures[next(iter(self._failures))]
            return len(failures) == self.limit
