"""The ``infercache`` logger, for operational events.

Events that an operator may want to see but that need no change of the
user's code go here, not through ``warnings``: an entry too large for
``max_memory``, a value that could not be kept safely, a framework probe, a
tier going away and coming back. Nothing is logged per hit. The library adds
only a ``NullHandler``; an application shows the events by configuring
logging as usual (``logging.basicConfig(level=logging.INFO)``).

Warnings remain for what the user's code must change (a deprecated argument,
a ``key=`` that cannot work).
"""

from __future__ import annotations

import logging

__all__ = ["logger"]

logger = logging.getLogger("infercache")
logger.addHandler(logging.NullHandler())
