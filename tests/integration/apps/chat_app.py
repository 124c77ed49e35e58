"""The chat example, plus ``/state``: every upstream call the fake model saw, for the tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import jsonify

from examples.chat import app, llm
from tests.integration.apps import server_watchdog

server_watchdog.start()


@app.get("/state")
def state() -> Any:
    return jsonify(calls=[dataclasses.asdict(call) for call in llm.calls])


__all__ = ["app"]
