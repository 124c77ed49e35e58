"""Type-checked with mypy --strict, never executed: CORS on every entry point."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, request
from werkzeug.wrappers import Response

from sse_sync import CORS, SSE, EventStreamResponse, EventStreamView, sse_response, sse_view

app = Flask(__name__)
app.config.update(SSE_CORS_ORIGINS=["https://app.example.com"], SSE_CORS_CREDENTIALS=True)
app.config["SSE_PUBLIC_CHANNELS"] = ["news"]
sse = SSE(app)
cors = CORS(["https://app.example.com"], credentials=True)
anyone = CORS("*")
origins: str | tuple[str, ...] = cors.origins
credentials: bool = cors.credentials
headers: list[tuple[str, str]] = cors.headers(request.headers.get("Origin"))


@app.get("/feed")
@sse_view(cors=cors, ping=5.0)
def feed() -> Iterator[int]:
    yield 1


@app.route("/chat", methods=["POST", "OPTIONS"], provide_automatic_options=False)
def chat() -> Response:
    if request.method == "OPTIONS":
        return cors.preflight(request, methods=["POST"])
    stream: EventStreamResponse = sse_response(iter(["hi"]), cors=anyone)
    return stream


class Prices(EventStreamView):
    cors = CORS(["https://app.example.com", "http://localhost:5173"])

    def events(self, **view_args: object) -> Iterator[float]:
        yield 1.5


Prices.register(app, "/prices")
