"""docs/tutorials/token-stream.md quotes examples/chat.py and its page exactly, so the recipe cannot drift."""

from __future__ import annotations

import re

from .conftest import ROOT


def _blocks(language: str) -> list[str]:
    text = (ROOT / "docs" / "tutorials" / "token-stream.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def _pieces(block: str) -> list[str]:
    """The parts of an excerpt between its ``...`` lines (which stand for omitted code)."""
    return [p for p in re.split(r"^\s*\.\.\.\n", block, flags=re.M) if p.strip()]


def test_chat_view_excerpt_is_verbatim() -> None:
    """Each part of the recipe's /chat view excerpt appears as is in examples/chat.py."""
    source = (ROOT / "examples" / "chat.py").read_text()
    [view] = [b for b in _blocks("python") if '@app.post("/chat")' in b]
    for piece in _pieces(view):
        assert piece in source, piece


def test_page_excerpt_is_verbatim() -> None:
    """The recipe's fetch() excerpt appears as is (indentation aside) in examples/static/chat.js."""
    page = (ROOT / "examples" / "static" / "chat.js").read_text()
    lines = [line.strip() for line in page.splitlines()]
    excerpt = _blocks("js")[0]
    stripped = [line.strip() for line in excerpt.splitlines()]
    assert any(lines[i : i + len(stripped)] == stripped for i in range(len(lines))), excerpt
