"""The Gradio output hook's fast path: values that cannot name a file are kept as they are.

``GradioIntegration.store_output`` returns exact ``str`` values with neither a
dot nor a path separator, and exact ``bytes``/numbers/``None``, without the
general walk (and without a ``stat``). It must decide exactly as the general
path does: a value is wrapped for its files if and only if it names a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from infercache.integrations.gradio import INTEGRATION, _as_file, _WithFiles

# Real files the drawn strings may name: with and without a dot, at two depths.
_DIR = Path(tempfile.mkdtemp(prefix="icout"))
(_DIR / "sub").mkdir()
_FILES = [_DIR / "plain", _DIR / "with.dot", _DIR / "sub" / "nodot"]
for _f in _FILES:
    _f.write_bytes(b"content of " + _f.name.encode())

_texts = st.one_of(
    st.text(alphabet=["a", "b", " ", ".", os.sep, "\n", "\x00", ":"], max_size=12),
    st.sampled_from([str(f) for f in _FILES] + [str(_DIR), "plain", "http://x.y/z", "no dot here"]),
)
_outputs = st.one_of(
    _texts,
    st.binary(max_size=8),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.sampled_from([os.fsencode(str(f)) for f in _FILES]),  # bytes naming a file are not a file output
)


@given(_outputs)
def test_store_output_wraps_exactly_the_values_that_name_a_file(value: Any) -> None:
    out = INTEGRATION.store_output(value)
    names_a_file = isinstance(value, str) and _as_file(value) is not None
    if names_a_file:
        assert type(out) is _WithFiles
        assert Path(INTEGRATION.load_output(out)).read_bytes() == Path(value).read_bytes()
    else:
        assert out is value


def test_a_path_without_a_dot_still_names_its_file() -> None:
    """The fast path skips only strings with neither a dot nor a separator (a bare name never is a file)."""
    for f in _FILES:
        assert type(INTEGRATION.store_output(str(f))) is _WithFiles, f
