"""Storage tiers behind the in-memory store, all through one interface (:class:`Tier`)."""

from .base import Lease, Tier
from .disk import DiskTier
from .memory import MemoryTier

__all__ = ["DiskTier", "Lease", "MemoryTier", "Tier"]
