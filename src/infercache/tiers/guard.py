"""A circuit breaker in front of a tier: a backend that is down never makes a call fail or wait.

:class:`Guarded` wraps any :class:`~infercache.tiers.Tier` and has the same
verbs. A verb that raises (a ``RedisError``, an ``OSError``, a
:class:`~infercache.errors.TierError`) is answered as if the tier had nothing
(``get`` -> None, ``set`` -> nothing stored, ``lease`` -> an uncoordinated
lease, so the caller computes locally), and opens the breaker: for the next
``cooldown`` seconds every verb skips the tier without touching it, so only
one call in each window pays a timeout. After the window one call probes the
tier; success closes the breaker, failure opens it again for twice as long
(up to ``max_cooldown``). Writes made while the breaker is open are dropped,
not queued: a cache may always lose entries, and the next miss writes again.

One log line when the tier goes away and one when it comes back, never one
per call. Every cache using a shared store holds its own :meth:`Guarded.view`
of the store's guard: one breaker for all, an error count per cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..log import logger
from .base import Lease, Tier

__all__ = ["Guarded"]

T = TypeVar("T")


class Guarded(Tier):
    """``tier`` behind a circuit breaker (see the module docstring).

    Args:
        tier: the tier to guard.
        cooldown: seconds the breaker stays open after the first failure.
        max_cooldown: the longest window after repeated failures.
        clock: monotonic seconds (a parameter for tests).
    """

    def __init__(
        self,
        tier: Tier,
        *,
        cooldown: float = 1.0,
        max_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tier = tier
        self.name = tier.name
        self._breaker = _Breaker(tier.name, cooldown, max_cooldown, clock)
        #: Failed verbs through this guard (tier errors, for one cache's stats).
        self.errors = 0

    def view(self) -> Guarded:
        """Another guard of the same tier sharing this one's breaker, with its own error count.

        Each cache using a shared store holds its own view, so its stats count
        the failures of its own calls while one failure still opens the
        breaker for every cache.
        """
        other = object.__new__(Guarded)
        other.tier = self.tier
        other.name = self.name
        other._breaker = self._breaker
        other.errors = 0
        return other

    @property
    def lease_ttl(self) -> float | None:
        """The guarded tier's lease expiry, if it sets one."""
        value = getattr(self.tier, "lease_ttl", None)
        return value if isinstance(value, (int, float)) else None

    @property
    def available(self) -> bool:
        """False while the breaker is open (the tier failed recently and is being skipped)."""
        return not self._breaker.down

    def _failed(self, verb: str, exc: BaseException, probe: bool) -> None:
        with self._breaker.lock:
            self.errors += 1
        self._breaker.failed(verb, exc, probe)

    def _run(self, verb: str, fallback: T, call: Callable[[], T]) -> T:
        way = self._breaker.enter()
        if way is _SKIP:
            return fallback
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - a tier never makes a call fail
            self._failed(verb, exc, way is _PROBE)
            return fallback
        if way is _PROBE:
            self._breaker.recovered()
        return result

    async def _arun(self, verb: str, fallback: T, call: Callable[[], Any]) -> T:
        # The twin of _run, awaiting the verb.
        way = self._breaker.enter()
        if way is _SKIP:
            return fallback
        try:
            result: T = await call()
        except Exception as exc:  # noqa: BLE001 - a tier never makes a call fail
            self._failed(verb, exc, way is _PROBE)
            return fallback
        if way is _PROBE:
            self._breaker.recovered()
        return result

    # The sync and async verbs are twins: each forwards to the tier through _run / _arun.

    def get(self, name: bytes) -> bytes | None:
        return self._run("get", None, lambda: self.tier.get(name))

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        self._run("set", None, lambda: self.tier.set(name, record, ttl))

    def delete(self, name: bytes) -> bool:
        return self._run("delete", False, lambda: self.tier.delete(name))

    def clear(self, prefix: bytes = b"") -> int:
        return self._run("clear", 0, lambda: self.tier.clear(prefix))

    def lease(self, name: bytes, ttl: float) -> Lease | None:
        granted: Lease | None = Lease()  # a tier that is down coordinates nothing: compute locally
        return self._run("lease", granted, lambda: self.tier.lease(name, ttl))

    def entries(self, prefix: bytes = b"") -> Iterator[tuple[bytes, int]]:
        none: list[tuple[bytes, int]] = []
        return iter(self._run("entries", none, lambda: list(self.tier.entries(prefix))))

    async def aget(self, name: bytes) -> bytes | None:
        return await self._arun("get", None, lambda: self.tier.aget(name))

    async def aset(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        await self._arun("set", None, lambda: self.tier.aset(name, record, ttl))

    async def adelete(self, name: bytes) -> bool:
        return await self._arun("delete", False, lambda: self.tier.adelete(name))

    async def aclear(self, prefix: bytes = b"") -> int:
        return await self._arun("clear", 0, lambda: self.tier.aclear(prefix))

    async def alease(self, name: bytes, ttl: float) -> Lease | None:
        granted: Lease | None = Lease()
        return await self._arun("lease", granted, lambda: self.tier.alease(name, ttl))

    def close(self) -> None:
        self.tier.close()

    def __repr__(self) -> str:
        state = "down" if self._breaker.down else "up"
        return f"<infercache.tiers.Guarded {self.tier!r} {state}>"


_PASS, _PROBE, _SKIP = "pass", "probe", "skip"


class _Breaker:
    """The state of one tier's circuit breaker, shared by every view of its guard."""

    def __init__(self, name: str, cooldown: float, max_cooldown: float, clock: Callable[[], float]) -> None:
        self.name = name
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.clock = clock
        self.lock = threading.Lock()
        self.open_until = 0.0
        self.window = cooldown
        self.down = False
        self.probing = False

    def enter(self) -> str:
        """How a call may go: ``_PASS`` (closed), ``_PROBE`` (the one probe of an open breaker) or ``_SKIP``."""
        if not self.down:
            return _PASS
        with self.lock:
            if not self.down:
                return _PASS
            if self.probing or self.clock() < self.open_until:
                return _SKIP
            self.probing = True
            return _PROBE

    def failed(self, verb: str, exc: BaseException, probe: bool) -> None:
        """A call failed: open the breaker (a failed probe doubles the window).

        A call that entered before another one opened the breaker changes
        nothing when it fails too: only the first failure and the probes count.
        """
        with self.lock:
            was_down = self.down
            if was_down and not probe:
                return
            self.window = min(self.window * 2, self.max_cooldown) if was_down else self.cooldown
            self.down = True
            self.probing = False
            self.open_until = self.clock() + self.window
        if not was_down:
            logger.warning(
                "infercache: %s tier unavailable (%s failed: %s: %s); going on without it, retrying in %.3gs",
                self.name,
                verb,
                type(exc).__name__,
                exc,
                self.window,
            )

    def recovered(self) -> None:
        """The probe succeeded: close the breaker (only a probe does: a call that entered
        before the breaker opened says nothing about the tier now)."""
        with self.lock:
            if not self.down:
                return
            self.down = False
            self.probing = False
            self.window = self.cooldown
        logger.warning("infercache: %s tier is back", self.name)
