"""Serve ``module:app`` with gevent's pywsgi server (monkey-patched) on 127.0.0.1:0.

Prints ``Listening at: http://127.0.0.1:PORT`` like gunicorn does, so the tests find the port.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import importlib  # noqa: E402  (after monkey-patching, as gevent requires)
import sys  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

module_name, _, attr = sys.argv[1].partition(":")
app = getattr(importlib.import_module(module_name), attr or "app")
server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
print(f"Listening at: http://127.0.0.1:{server.server_port}", file=sys.stderr, flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
