"""The SSE extension over Redis: any worker, host or job can publish; every stream gets it.

redis-server &
SSE_BROKER_URL=redis://localhost:6379/0 gunicorn -c examples/gunicorn.conf.py examples.redis_app:app
curl -N 'http://127.0.0.1:8000/stream?channel=news&channel=user:ann' -H 'X-User: ann' &
curl -X POST -H 'Content-Type: application/json' -d '{"title": "hi"}' http://127.0.0.1:8000/news

From a job queue or a script, without Flask:

    from sse_sync import RedisBroker
    RedisBroker.from_url("redis://localhost:6379/0").publish("news", {"title": "from a job"})
"""

from __future__ import annotations

import os

from flask import Flask, request

from sse_sync import SSE

app = Flask(__name__)
app.config.update(
    SSE_BROKER_URL=os.environ.get("SSE_BROKER_URL", "redis://localhost:6379/0"),
    SSE_HISTORY=10_000,  # events kept per channel for clients that reconnect
    SSE_MAX_LIFETIME=3600.0,  # move clients around now and then (with a jittered retry:)
    SSE_CORS_ORIGINS=["https://app.example.com"],
)
sse = SSE(app)  # GET /stream?channel=...


@sse.authorize
def may_subscribe(channel: str) -> bool:
    """Everyone may read 'news'; 'user:<name>' only its owner (use your real login here)."""
    if channel == "news":
        return True
    return channel == f"user:{request.headers.get('X-User')}"


@app.post("/news")
def post_news() -> tuple[str, int]:
    sse.publish("news", request.get_json(), event="news")
    return "", 204


@app.post("/users/<name>/notify")
def notify(name: str) -> tuple[str, int]:
    sse.publish(f"user:{name}", request.get_json(), event="notification")
    return "", 204
