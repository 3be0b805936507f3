"""Every ```python block of README.md runs as written.

Each block is executed on its own, in a fresh namespace (so it must bring its
own imports and data), with a temporary working directory (so the files the
examples save land there, not in the repository). Blocks that are notation
rather than code are fenced as ```text and not run.
"""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(text):
    """``(line number, source)`` of every ```python block of ``text``."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(2))
            for m in FENCE.finditer(text) if m.group(1) == "python"]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_readme_blocks_found():
    # The Quick start and the examples after it: a parser that finds nothing
    # would let every README example rot unseen.
    assert len(BLOCKS) >= 5
    assert any("tn.data.load_digits()" in source for _, source in BLOCKS)


def test_python_blocks_extracted_as_fenced():
    text = "a\n```python\nx = 1\n```\n```text\nf(a, b=...)\n```\n```sh\nls\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n")]


@pytest.mark.parametrize("line, source", BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_readme_block_runs(line, source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(source, f"README.md, the block at line {line}", "exec")
    exec(code, {"__name__": "__readme__"})
