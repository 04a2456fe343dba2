"""An S3 endpoint that misbehaves: a proxy on loopback in front of the moto server that, for
a seeded share of requests, answers 503 SlowDown without passing the request on, delays
the answer, or passes the request on and then drops the connection without answering (the
worst case for a write: it happened, and the client cannot know). Clients point their
endpoint at :attr:`FaultyS3.url`; :attr:`FaultyS3.counts` says what was injected.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b'<Message>Please reduce your request rate.</Message></Error>')
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class FaultyS3:
    """The proxy, serving on a free loopback port until :meth:`close`.

    Args:
        upstream: the real endpoint (``http://127.0.0.1:PORT``).
        seed: the faults' random seed (the same requests in the same order get the same faults).
        slow_down: share of requests answered 503 SlowDown, not passed on.
        drop: share passed on, then the connection dropped with no answer.
        delay: share answered after a delay of up to ``max_delay_s``.
    """

    def __init__(self, upstream: str, seed: int = 0, slow_down: float = 0.05, drop: float = 0.05,
                 delay: float = 0.05, max_delay_s: float = 0.5) -> None:
        target = urlsplit(upstream)
        self.host, self.port = target.hostname or "127.0.0.1", target.port or 80
        self.rates = (slow_down, drop, delay)
        self.max_delay_s = max_delay_s
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _fault(self) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            draw = self._rng.random()
            slow_down, drop, delay = self.rates
            for kind, bound in (("slow_down", slow_down), ("drop", slow_down + drop),
                                ("delay", slow_down + drop + delay)):
                if draw < bound:
                    self.counts[kind] += 1
                    return kind
        return None

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = _read_body(request)
        fault = self._fault()
        if fault == "slow_down":
            request.send_response(503, "Slow Down")
            request.send_header("Content-Type", "application/xml")
            request.send_header("Content-Length", str(len(SLOW_DOWN)))
            request.end_headers()
            if request.command != "HEAD":
                request.wfile.write(SLOW_DOWN)
            return
        status, reason, headers, payload = self._forward(request, body)
        if fault == "drop":  # the request happened; its answer never arrives
            request.close_connection = True
            return
        if fault == "delay":
            time.sleep(self._rng.uniform(0, self.max_delay_s))
        request.send_response(status, reason)
        for name, value in headers:
            # a HEAD's Content-Length is the object's size, not its (empty) body's
            if name.lower() not in _HOP_BY_HOP and (name.lower() != "content-length" or request.command == "HEAD"):
                request.send_header(name, value)
        if request.command != "HEAD":
            request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or request.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            connection.request(request.command, request.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
            return answer.status, answer.reason, answer.getheaders(), payload
        finally:
            connection.close()


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request's body, de-chunked when it came with ``Transfer-Encoding: chunked``."""
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(request.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while request.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(request.rfile.read(size))
            request.rfile.readline()
    length = int(request.headers.get("Content-Length") or 0)
    return request.rfile.read(length) if length else b""
