"""The infercache demo app (``infercache demo``): the caching guide's demos on ``import infercache as ic``."""

from __future__ import annotations

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
        from . import app

        return app
    raise AttributeError(name)
