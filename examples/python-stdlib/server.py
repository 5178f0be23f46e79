"""A small HTTP service in Python's standard library only, run and drilled by stayup.

It knows nothing of stayup: it listens on HOST:PORT and names the instance that answered
(STAYUP_INSTANCE_ID). It keeps no shared state, so it needs no Redis (REDIS_URL is there if it did).
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "3000"))
INSTANCE = os.environ.get("STAYUP_INSTANCE_ID", "local")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load balancer's connections expect

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/health":
            self.answer(200, {"status": "ok", "instanceId": INSTANCE})
        elif path == "/":
            self.answer(200, {"hello": "from Python", "instanceId": INSTANCE})
        else:
            self.answer(404, {"error": "not found"})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass  # one line per request would fill the instance's log


server = ThreadingHTTPServer((HOST, PORT), Handler)
server.daemon_threads = True
# Stopped (scale-in, roll, `stayup down`): leave at once; the load balancer drained it first.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"listening on http://{HOST}:{PORT} as {INSTANCE}", flush=True)
server.serve_forever()
