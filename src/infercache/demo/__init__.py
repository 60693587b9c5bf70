"""The infercache demo app (``infercache demo``): the caching guide's demos on ``import infercache as ic``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["build_demo"]


def build_demo(kv_model: str | None = None) -> gr.Blocks:
    """Build the demo's ``gr.Blocks`` (imports Gradio on first call)."""
    from .app import build_demo as _build

    return _build(kv_model)


def __getattr__(name: str) -> Any:
    if name == "app":
        # import_module, not "from . import app": that would look the name up here again first.
        return importlib.import_module(f"{__name__}.app")
    raise AttributeError(name)
