"""A fault-injecting proxy in front of a real llama-server, on 127.0.0.1.

Every request is forwarded to the real server and its answer relayed as it streams, except where
``fault`` says to break it the way real deployments break: an HTTP status (401, 404, 429, 503), a
stream that stalls, one that turns malformed, or one cut off before the reply is finished. The
engine under test is always the real server; only the network in between misbehaves.
"""

from __future__ import annotations

import http.server
import threading
import time

import httpx

FAULTS = ("none", "401", "404", "429", "503", "stall", "malformed", "truncate")
CHUNKS_BEFORE_FAULT = 3  # stream events relayed before a mid-stream fault


class FaultProxy:
    def __init__(self, upstream: str, port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault = "none"
        self.requests = 0  # chat completions seen
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                proxy._forward(self, "GET")

            def do_POST(self) -> None:
                proxy._forward(self, "POST")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _forward(self, handler, method: str) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        chat = handler.path.endswith("/chat/completions")
        if chat:
            self.requests += 1
        if chat and self.fault in ("401", "404", "429", "503"):
            payload = b'{"error": {"message": "injected", "code": %s}}' % self.fault.encode()
            handler.send_response(int(self.fault))
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("authorization", "content-type")}
        with httpx.Client(timeout=None) as client:
            with client.stream(method, self.upstream + handler.path, headers=headers, content=body) as upstream:
                handler.send_response(upstream.status_code)
                handler.send_header("Content-Type", upstream.headers.get("content-type", "application/json"))
                handler.send_header("Connection", "close")
                handler.end_headers()
                events = 0
                try:
                    for line in upstream.iter_lines():
                        if chat and line.startswith("data:"):
                            events += 1
                            if events > CHUNKS_BEFORE_FAULT and self.fault != "none":
                                self._break(handler, upstream)
                                return
                        handler.wfile.write(line.encode() + b"\n")
                        handler.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client closed the stream (Stop)
                    return
        handler.close_connection = True

    def _break(self, handler, upstream) -> None:
        upstream.close()  # the real server stops generating; the client sees only what follows
        if self.fault == "stall":
            time.sleep(60)  # the client gives up first
        elif self.fault == "malformed":
            handler.wfile.write(b'data: {"choices": [{"delta": {"content": "x"}, "index": 0\n\n')
            handler.wfile.flush()
        handler.close_connection = True  # "truncate": the connection just ends, no finish, no [DONE]
