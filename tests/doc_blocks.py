"""Reading and running the code blocks of the README and of the pages in ``docs/``.

Each Python block of a page runs top to bottom in one namespace, as a reader pasting them
into one module would (later blocks use the ``app`` and the models of earlier ones). What a
page needs but does not show lives in hidden setup comments, run in their place::

    <!-- setup: run by tests/test_doc_blocks.py before the blocks below, not shown
    from flask import Flask
    app = Flask(__name__)
    -->

Two markers, each on the line before a fence, name blocks that are not run:

- ``<!-- not run: REASON -->``: another library's code, shown for comparison (its library is
  not installed here); it is still compiled.
- ``<!-- excerpt: PATH -->``: an excerpt of a file of this repository; each part between
  ``...`` lines must appear in that file as it is (indentation aside).

Only a few things are arranged around the blocks (see :func:`run_page`): an ``httpx`` client
a block creates reaches the page's app in process, ``print`` stops an endless reading loop,
and ``redis://localhost`` URLs point at the test's own Redis server.
"""

from __future__ import annotations

import re
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from sse_sync import SSE, MemoryBroker, RedisBroker

from .conftest import ROOT, wait_until

#: The pages whose Python blocks are checked: the README and every Markdown page of the site.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [page for page in PAGES if "_build" not in page.parts]

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_MARKER = re.compile(r"^\s*<!-- (?P<kind>not run|excerpt): (?P<what>.+?) -->\s*$")
_SETUP = re.compile(r"^\s*<!-- setup\b")
_REDIS_URL = re.compile(r"redis://localhost(:6379/0)?")


@dataclass
class Block:
    """One fenced block (or hidden setup) of a page."""

    page: Path
    line: int  #: the 0-based line of the block's first code line
    lang: str
    code: str
    kind: str = "run"  #: "run", "setup", "not run" or "excerpt"
    what: str = ""  #: the reason a block is not run, or the file an excerpt quotes

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line + 1}"


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block and hidden setup of ``page``, in order, dedented."""
    lines = page.read_text().splitlines(keepends=True)
    blocks: list[Block] = []
    marker: re.Match[str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if _SETUP.match(line):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->")
            code = textwrap.dedent("".join(lines[i + 1 : end]))
            blocks.append(Block(page, i + 1, "python", code, "setup"))
            i = end
        elif found := _MARKER.match(line):
            marker = found
        elif fence and fence["lang"]:
            close = f"{fence['indent']}```"
            end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == close)
            code = textwrap.dedent("".join(lines[i + 1 : end]))
            kind, what = (marker["kind"], marker["what"]) if marker else ("run", "")
            blocks.append(Block(page, i + 1, fence["lang"], code, kind, what))
            marker = None
            i = end
        elif line.strip():
            marker = None
        i += 1
    return blocks


def python_blocks(page: Path) -> list[Block]:
    """The blocks of ``page`` that run, in order: Python blocks and hidden setups."""
    return [b for b in read_blocks(page) if b.lang == "python" and b.kind in ("run", "setup")]


class _Enough(Exception):
    """Raised by a page's ``print`` once a reading loop has shown enough."""


@dataclass
class PageRun:
    """What running a page's blocks left: their namespace, apps and printed lines."""

    page: Path
    max_prints: int = 2
    namespace: dict[str, Any] = field(default_factory=dict)
    apps: list[Flask] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)
    blocks_run: int = 0

    def print(self, *args: object, **kwargs: Any) -> None:
        self.printed.append(" ".join(map(str, args)))
        if len(self.printed) == self.max_prints:
            raise _Enough

    def run(self, blocks: list[Block], redis_url: str | None = None) -> None:
        self.namespace.update({"__name__": "docs_" + self.page.stem, "print": self.print})
        for block in blocks:
            code = block.code
            if redis_url is not None:
                code = _REDIS_URL.sub(redis_url, code)
            try:
                exec(compile("\n" * block.line + code, str(block.page), "exec"), self.namespace)
            except _Enough:
                pass
            self.blocks_run += 1
            app = self.namespace.get("app")
            if isinstance(app, Flask) and app not in self.apps:
                self.apps.append(app)

    def close(self) -> None:
        """Close the brokers the page made (a RedisBroker's reader thread outlives its Redis)."""
        for value in self.namespace.values():
            broker = value.broker if isinstance(value, SSE) else value
            if isinstance(broker, (MemoryBroker, RedisBroker)):
                broker.close()

    @property
    def app(self) -> Flask:
        """The page's first app (the one later blocks add routes to, and clients reach)."""
        return self.apps[0]


def needs_redis(blocks: list[Block]) -> bool:
    """Whether a block uses a Redis URL in its code (not only in a comment)."""
    return any(
        _REDIS_URL.search(line.partition("#")[0])
        for block in blocks
        for line in block.code.splitlines()
    )


@contextmanager
def httpx_to(run: PageRun) -> Iterator[None]:
    """While running, ``httpx.Client()`` reaches the page's first app in process."""

    class AppClient(httpx.Client):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport=httpx.WSGITransport(app=run.app), **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx, "Client", AppClient)
        yield


def run_page(page: Path, redis_url: str | None = None, max_prints: int = 2) -> PageRun:
    """Run every Python block and hidden setup of ``page``, in order."""
    run = PageRun(page, max_prints)
    with httpx_to(run):
        run.run(python_blocks(page), redis_url)
    return run


def excerpt_pieces(block: Block) -> list[list[str]]:
    """The parts of an excerpt between its ``...`` lines, each as stripped lines."""
    pieces = re.split(r"^\s*\.\.\.\n", block.code, flags=re.M)
    return [[line.strip() for line in p.splitlines()] for p in pieces if p.strip()]


def publish_when_subscribed(broker: Any, channel: str, data: Any) -> threading.Thread:
    """Publish ``data`` once ``broker`` has a subscriber (a page's reading loop), from a thread."""

    def publish() -> None:
        wait_until(lambda: broker.stats()["subscribers"] >= 1)
        broker.publish(channel, data)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    return thread


def stream_bytes(app: Flask, path: str) -> bytes:
    """The whole body of the stream at ``path`` of ``app``, read through the test client."""
    response = app.test_client().get(path, buffered=False)
    try:
        return b"".join(response.response)
    finally:
        response.close()
