"""``stream_app``, after ``logging.basicConfig`` when ``SSE_SYNC_TEST_LOGGING=configured``."""

from __future__ import annotations

import logging
import os
import sys

if os.environ.get("SSE_SYNC_TEST_LOGGING") == "configured":
    logging.basicConfig(stream=sys.stderr, format="CONFIGURED %(levelname)s %(name)s: %(message)s")

from tests.integration.apps.stream_app import app  # noqa: E402

__all__ = ["app"]
