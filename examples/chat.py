"""An LLM-style chat stream: POST a prompt, stream the answer token by token, stop at any time.

Run it and open http://127.0.0.1:8000::

    gunicorn -k gevent examples.chat:app        # or -k gthread, or python examples/chat.py

``POST /chat`` takes ``{"prompt": "...", "max_tokens": 200}`` and answers with an event
stream: one ``token`` event per token (``data: {"text": " world"}``), then a ``done`` event.
A bad body is answered ``400`` with ``{"error": ...}`` before any stream starts.

The page (``static/chat.html``, ``static/chat.js``) cannot use ``EventSource``, which only
sends GETs: it POSTs with ``fetch()``, parses the event stream from the response body, and
aborts the request with an ``AbortController`` when you press Stop. When the browser goes
away (Stop, a closed tab, a lost network), sse_sync closes the generator, whose ``finally``
closes the upstream stream, so a paid model stops generating within a second.

``FakeLLM`` stands for a blocking SDK client (OpenAI's, Anthropic's, ...): its streams yield
tokens with small blocking sleeps and can be closed, and it records when each one was
opened and closed (``llm.calls``). See docs/tutorials/token-stream.md for the whole explanation.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request

from sse_sync import ServerSentEvent, sse_response

#: Seconds between two tokens of the fake model.
DELAY = float(os.environ.get("SSE_SYNC_EXAMPLE_DELAY", "0.05"))
#: The longest answer a client may ask for.
MAX_TOKENS = 2000

app = Flask(__name__)

_ANSWER = (
    "Server-sent events are a simple way to stream text from a server to a browser. "
    "Each token arrives as its own event, so the page can show the answer while it is "
    "still being written, and the server stops writing as soon as nobody is reading. "
)


@dataclass
class Call:
    """One upstream stream, as the fake model saw it (times are ``time.time()``)."""

    id: int
    prompt: str
    opened: float
    tokens: int = 0
    closed: float | None = None
    finished: bool = False


class TokenStream:
    """A blocking token stream, like an SDK's streaming response: iterate it, then close it."""

    def __init__(self, call: Call, max_tokens: int) -> None:
        self._call = call
        self._max_tokens = max_tokens

    def __iter__(self) -> Iterator[str]:
        reply = f'You said: "{self._call.prompt}". ' + _ANSWER * 100
        # Words with their leading space, as LLM tokenizers cut text.
        for token in itertools.islice(re.findall(r"\s*\S+", reply), self._max_tokens):
            time.sleep(DELAY)  # the model computing the next token (blocking I/O in an SDK)
            self._call.tokens += 1
            yield token
        self._call.finished = True

    def close(self) -> None:
        """Hang up on the model (an SDK closes its HTTP response here); idempotent."""
        if self._call.closed is None:
            self._call.closed = time.time()


class FakeLLM:
    """A stand-in for a blocking LLM client; ``calls`` records every stream it opened."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def stream(self, prompt: str, max_tokens: int) -> TokenStream:
        with self._lock:
            call = Call(next(self._ids), prompt, opened=time.time())
            self.calls.append(call)
        return TokenStream(call, max_tokens)


llm = FakeLLM()


def _bad_request(error: str) -> Any:
    return jsonify(error=error), 400


@app.get("/")
def index() -> Any:
    return app.send_static_file("chat.html")


@app.post("/chat")
def chat() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _bad_request('Expected a JSON object such as {"prompt": "Hello"}')
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return _bad_request(f"Expected 'prompt' to be a non-empty string, got {prompt!r}")
    max_tokens = body.get("max_tokens", 200)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        return _bad_request(f"Expected 'max_tokens' to be an integer, got {max_tokens!r}")
    if not 1 <= max_tokens <= MAX_TOKENS:
        return _bad_request(f"Expected 'max_tokens' from 1 to {MAX_TOKENS}, got {max_tokens!r}")

    def answer() -> Iterator[ServerSentEvent]:
        upstream = llm.stream(prompt, max_tokens)
        try:
            for token in upstream:
                yield ServerSentEvent(data={"text": token}, event="token")
            yield ServerSentEvent(data={"reason": "end"}, event="done")
        finally:
            # Runs when the answer is complete and also when the client goes away: sse_sync
            # closes this generator then (under gevent at once, under threads as soon as the
            # current token arrives), so the model stops generating for nobody.
            upstream.close()

    return sse_response(answer())


if __name__ == "__main__":
    app.run(threaded=True, port=8000)
