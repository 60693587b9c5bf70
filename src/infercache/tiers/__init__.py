"""Storage tiers behind the in-memory store, all through one interface (:class:`Tier`)."""

from .base import Lease, Tier
from .disk import DiskTier
from .memory import MemoryTier
from .redis import RedisTier  # redis-py itself is imported when a RedisTier is made

__all__ = ["DiskTier", "Lease", "MemoryTier", "RedisTier", "Tier"]
