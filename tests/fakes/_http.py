"""What the HTTP doubles share: a quiet threaded server, handler plumbing, a life cycle.

Each double (Ollama, OpenAI-compatible) subclasses :class:`DoubleHandler` for its
streaming format and :class:`HttpDouble` for its routes (``_dispatch``).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class Disconnected(Exception):
    """The client went away, or the script dropped the connection."""


class DoubleServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of concurrent clients (the
    # gateway bench sends 50) would see connections reset.
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, double: HttpDouble, handler: type[DoubleHandler]) -> None:
        self.fake = double
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal here: no traceback on stderr.
        # Anything else is a bug in the double, and says so.
        if isinstance(sys.exc_info()[1], Disconnected | OSError):
            return
        super().handle_error(request, client_address)


class DoubleHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    json_content_type = "application/json"
    server: DoubleServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Real servers (Go's net/http for Ollama) disable Nagle; without this the
        # headers and body of each answer go out as two segments and the second
        # waits ~40 ms for the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (Disconnected, ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def do_GET(self) -> None:
        self.server.fake._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.fake._dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.server.fake._dispatch(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.fake._dispatch(self, "DELETE")

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_bytes(
        self, status: int, body: bytes, content_type: str, *, head: bool = False
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Date", self.date_time_string())
            self.end_headers()
            if not head:
                self.wfile.write(body)
            self.wfile.flush()
        except OSError as exc:
            raise Disconnected from exc

    def send_json(self, status: int, obj: Any, *, head: bool = False) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_bytes(status, body, self.json_content_type, head=head)

    def start_chunked(self, content_type: str, **headers: str) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Date", self.date_time_string())
            self.end_headers()
            self.wfile.flush()
        except OSError as exc:
            raise Disconnected from exc

    def send_chunked(self, data: bytes) -> None:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        except OSError as exc:
            raise Disconnected from exc

    def end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as exc:
            raise Disconnected from exc

    def drop(self) -> None:
        """Close the connection abruptly, as a crashed server would."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise Disconnected


class HttpDouble:
    """Start, stop and address a double; subclasses give ``handler`` and ``_dispatch``."""

    handler: type[DoubleHandler]
    thread_name = "fake-http"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: DoubleServer | None = None
        self._thread: threading.Thread | None = None

    def _dispatch(self, h: Any, method: str) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = DoubleServer(self, self.handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.thread_name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes any handler sleeping in a scripted delay
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _sleep(self, seconds: float) -> None:
        """Wait, unless the double is stopping (then the handler ends its answer)."""
        if seconds > 0:
            self._stopping.wait(seconds)
        if self._stopping.is_set():
            raise Disconnected
