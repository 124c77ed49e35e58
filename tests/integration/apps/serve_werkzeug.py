"""Serve ``module:app`` with Werkzeug's threaded development server on 127.0.0.1:0.

Prints ``Listening at: http://127.0.0.1:PORT`` like gunicorn does, so the tests find the port.
"""

from __future__ import annotations

import importlib
import sys

from werkzeug.serving import make_server

module_name, _, attr = sys.argv[1].partition(":")
app = getattr(importlib.import_module(module_name), attr or "app")
server = make_server("127.0.0.1", 0, app, threaded=True)
print(f"Listening at: http://127.0.0.1:{server.server_port}", file=sys.stderr, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
