"""Storage tiers behind the in-memory store, all through one interface (:class:`Tier`)."""

from .base import Tier
from .disk import DiskTier
from .memory import MemoryTier

__all__ = ["DiskTier", "MemoryTier", "Tier"]
