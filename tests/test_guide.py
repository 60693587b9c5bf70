"""Every Python sample of the caching guide runs with ``ic`` in place of ``gr``.

The samples are read from the guide itself (``../shared/seed/caching-guide.md``
beside the repository), with only the import changed, and run against small
stand-ins for the guide's undefined ``model``/``llm`` names.

The guide is not part of the repository. Every read of it goes through
:func:`samples`, which skips the test (one reason, naming where the guide is
looked for) when it is absent, so a clone of the repository alone passes. The
project's own guide, ``docs/guide.md``, is always run (``test_docs_guide.py``).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "caching-guide.md"
GUIDE_ABSENT = (
    "the caching guide is not beside this repository "
    "(looked for ../shared/seed/caching-guide.md); these tests run its samples"
)


def samples() -> list[str]:
    """The guide's Python blocks; skips the calling test when the guide is absent."""
    if not GUIDE.is_file():
        pytest.skip(GUIDE_ABSENT)
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 6
    return blocks


def port(code: str) -> str:
    """The only edit a user makes: the import (fragments assume the program imported it)."""
    if "import gradio as gr" not in code:
        code = "import gradio as gr\n" + code
    code = code.replace("import gradio as gr", "import infercache as ic")
    return re.sub(r"\bgr\.", "ic.", code)


class Model:
    """Stands for the guide's undefined model objects; counts its work."""

    def __init__(self) -> None:
        self.calls = 0
        self.past_key_values = None

    def predict(self, image):
        self.calls += 1
        return f"label-{image}"

    def generate(self, prompt, past_key_values=None):
        self.calls += 1
        self.past_key_values = ("kv", prompt)
        if past_key_values is None:
            return SimpleNamespace(text=f"gen:{prompt}")
        return SimpleNamespace(text=f"gen:{prompt}|reused:{past_key_values[1]}")

    async def transcribe(self, audio):
        self.calls += 1
        await asyncio.sleep(0)
        return f"text-{audio}"


def run_sample(code: str, extra: dict) -> dict:
    namespace: dict = {"__name__": "guide_sample", **extra}
    exec(compile(port(code), "<guide>", "exec"), namespace)  # noqa: S102 - running the samples is the test
    return namespace


def find(fragment: str) -> str:
    for code in samples():
        if fragment in code:
            return code
    raise AssertionError(f"no sample contains {fragment!r}")


def test_all_samples_use_only_the_ported_names() -> None:
    for code in samples():
        ported = port(code)
        assert "gr." not in ported and "gradio" not in ported.replace("import infercache", "")


def test_classify_sample() -> None:
    model = Model()
    ns = run_sample(find("def classify"), {"model": model})
    assert ns["classify"]("img") == ns["classify"]("img") == "label-img"
    assert model.calls == 1


def test_streaming_generator_sample() -> None:
    class Streamer(Model):
        def generate(self, prompt):
            self.calls += 1
            return iter(prompt.split())

    model = Streamer()
    ns = run_sample(find("def stream_response"), {"model": model})
    first = list(ns["stream_response"]("a b c"))
    assert first == ["a", "ab", "abc"]
    assert list(ns["stream_response"]("a b c")) == first
    assert model.calls == 1


def test_async_sample() -> None:
    model = Model()
    ns = run_sample(find("async def transcribe"), {"model": model})

    async def main():
        return [await ns["transcribe"]("wav"), await ns["transcribe"]("wav")]

    assert asyncio.run(main()) == ["text-wav", "text-wav"]
    assert model.calls == 1


def test_parameters_sample_and_cache_handle() -> None:
    seen = []

    def llm(prompt, temperature):
        seen.append(temperature)
        return f"{prompt}@{temperature}"

    ns = run_sample(find("max_memory=\"512mb\""), {"llm": llm})
    generate = ns["generate"]
    assert generate("hi", temperature=0.1) == "hi@0.1"
    assert generate("hi", temperature=0.9) == "hi@0.1"  # key= ignores temperature
    assert seen == [0.1]
    handle_code = find("generate.cache.clear()")
    out = run_sample(handle_code, {"generate": generate, "print": lambda *a: seen.append(a)})
    assert out is not None and seen[-1] == (0,)


def test_manual_cache_sample() -> None:
    work = []

    def expensive_computation(prompt):
        work.append(prompt)
        return prompt[::-1]

    ns = run_sample(find("def my_function"), {"expensive_computation": expensive_computation})
    assert ns["my_function"]("abc") == ns["my_function"]("abc") == "cba"
    assert work == ["abc"]


def test_kv_cache_sample() -> None:
    model = Model()
    ns = run_sample(find("past_kv"), {"model": model})
    generate = ns["generate"]
    assert generate("The cat") == "gen:The cat"
    assert generate("The cat sat") == "gen:The cat sat|reused:The cat"
    assert model.calls == 2


@pytest.mark.parametrize("name", ["cache", "Cache"])
def test_guide_api_names_exist(name: str) -> None:
    import infercache as ic

    assert callable(getattr(ic, name))
