"""gunicorn settings for event streams: gunicorn -c examples/gunicorn.conf.py app:app

Why each setting is what it is: docs/deployment.md.
"""

import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")

# gevent: one greenlet per open stream, so one worker holds thousands of idle streams.
# sse_sync's gevent worker is gunicorn's ("gevent") plus broker fan-out written by the
# publisher: a non-blocking send per subscriber instead of a greenlet switch and a write.
worker_class = "sse_sync.gunicorn.GeventWorker"
# One process per core. With several workers use RedisBroker: a MemoryBroker is per process.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
# The most connections (streams + ordinary requests) one worker serves at once.
worker_connections = 10_000

# Under gevent the worker's heartbeat runs on its own greenlet, so long streams do not trip
# the timeout; it only catches a worker that blocks the event loop (CPU-bound code).
timeout = 30
# How long a stopping worker waits for requests to finish. Streams do not wait for it: they
# end within about a second of the stop with a "retry:" hint spread over 1-5 s, so clients
# reconnect to the other workers a few at a time.
graceful_timeout = 10
# Idle keep-alive between ordinary requests. Streams are not idle: pings every 15 s.
keepalive = 5

# Restart workers now and then (memory hygiene). Their streams drain as on SIGTERM; the
# jitter keeps workers from restarting together.
max_requests = 100_000
max_requests_jitter = 10_000

# Behind nginx or a load balancer, trust its X-Forwarded-* headers (see docs/nginx.conf).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
