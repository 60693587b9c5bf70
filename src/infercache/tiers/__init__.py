"""Storage tiers behind the in-memory store, all through one interface (:class:`Tier`)."""

from .base import Tier
from .memory import MemoryTier

__all__ = ["MemoryTier", "Tier"]
