"""Framework integrations, discovered lazily by :mod:`infercache.hooks`."""
