"""The README's demo app, with the watchdog that stops the server when the test run is gone."""

from __future__ import annotations

from examples.demo import app
from tests.integration.apps import server_watchdog

server_watchdog.start()

__all__ = ["app"]
