"""A real HTTP server that speaks the OpenAI chat-completions protocol, for tests.

Nothing in the ``openai`` SDK is mocked: tests point a real client at
``server.base_url`` and the SDK does its own HTTP, retries, timeouts and
parsing against this server on 127.0.0.1::

    with FakeLLMServer() as server:
        server.script(Status(429, headers={"retry-after-ms": "1"}), Answer("hello"))
        client = OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=1)
        client.chat.completions.create(model="m", messages=[...])
        assert server.requests_to() == 2

Only ``POST /v1/chat/completions`` is served (non-streaming; a request with
``"stream": true`` still gets a plain JSON answer, which the SDK cannot read).
Every other path or method gets a 404 with an OpenAI-style error body.

Scripted responses are consumed one per chat-completions request, in arrival
order; when the script is empty ``server.default`` answers.

About retry delays in the SDK: a ``retry-after: 0`` header is *not* honoured
as "retry now" (the SDK only uses values strictly greater than zero) and the
SDK falls back to its exponential backoff, 0.5 s * 2**n less up to 25 %
jitter. ``retry-after-ms: 1`` (see :data:`NO_WAIT`) makes a retry immediate.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, cast
from urllib.parse import urlsplit

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"

#: Headers that make the SDK retry after 1 ms instead of its 0.5-8 s backoff.
NO_WAIT: dict[str, str] = {"retry-after-ms": "1"}

# Errors a handler sees when the client has gone away (timed out, closed its
# pool, was killed). They are expected in these tests and are not reported.
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "unknown_url"),
    408: ("timeout", None),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


# --------------------------------------------------------------------------- #
# What the server saw
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived.

    ``body`` is the parsed JSON (``None`` when the body was empty or not JSON);
    ``raw_body`` keeps the bytes. ``arrived`` is ``time.monotonic()`` at the
    moment the request was read, so gaps between requests measure the
    client's retry delays.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    arrived: float


# --------------------------------------------------------------------------- #
# What the server answers
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Answer:
    """A 200 ``chat.completion`` whose single choice carries ``content``.

    ``model`` defaults to the model named in the request.
    """

    content: str
    prompt_tokens: int = 10
    completion_tokens: int = 20
    model: str | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True)
class JSONAnswer:
    """An :class:`Answer` whose content is the optimizer's JSON reply."""

    optimized_prompt: str
    rationale: str = "Fake rationale from the test server."
    prompt_tokens: int = 10
    completion_tokens: int = 20
    model: str | None = None

    def as_answer(self) -> Answer:
        """The equivalent plain :class:`Answer`."""
        content = json.dumps(
            {"optimized_prompt": self.optimized_prompt, "rationale": self.rationale},
            ensure_ascii=False,
        )
        return Answer(
            content,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            model=self.model,
        )


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds``, then send ``then``.

    The client may have given up by then; the failed write is swallowed. The
    wait ends early (and nothing is sent) when the server stops.
    """

    seconds: float
    then: Response


@dataclass(frozen=True)
class Status:
    """An error status with an OpenAI-style error body unless ``body`` is given.

    ``headers`` are sent as they are, e.g. ``{"retry-after-ms": "1"}``.
    """

    code: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Malformed:
    """A 200 ``application/json`` response whose body is ``raw`` verbatim."""

    raw: bytes = b"{not json"


@dataclass(frozen=True)
class Disconnect:
    """Close the connection without sending any response."""


@dataclass(frozen=True)
class Dynamic:
    """Compute the response from the request's JSON body (always a dict).

    If ``fn`` raises, the server answers 500 with the exception in the error
    message and records the exception in ``server.errors``.
    """

    fn: Callable[[dict[str, Any]], Response]


Response = Answer | JSONAnswer | Slow | Status | Malformed | Disconnect | Dynamic


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def error_body(code: int, message: str | None = None) -> dict[str, Any]:
    """The error JSON the OpenAI API sends for HTTP status ``code``."""
    kind, error_code = _ERROR_KINDS.get(
        code, ("server_error" if code >= 500 else "api_error", None)
    )
    return {
        "error": {
            "message": message or f"Fake error {code} from the test server.",
            "type": kind,
            "param": None,
            "code": error_code,
        }
    }


def completion_body(answer: Answer, request_body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` JSON for ``answer`` to a request with ``request_body``."""
    model = answer.model or str(request_body.get("model") or "fake-model")
    return {
        "id": f"chatcmpl-fake-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.content, "refusal": None},
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        },
    }


def _json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return _Reply(status, body, {"content-type": "application/json", **(headers or {})})


# --------------------------------------------------------------------------- #
# The server
# --------------------------------------------------------------------------- #


class FakeLLMServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

    The socket is bound on construction (an ephemeral port); ``start()`` or
    ``with`` serves it from a daemon thread and ``stop()`` or leaving the
    ``with`` block shuts it down, closes open keep-alive connections and joins
    the threads (each with ``stop_timeout`` seconds).

    Thread-safe: the SDK may call from several threads at once.
    """

    def __init__(self, *, default: Response | None = None, stop_timeout: float = 5.0) -> None:
        #: Answers a chat-completions request when the script is empty.
        self.default: Response = default if default is not None else Answer("fake answer")
        #: Exceptions raised by ``Dynamic`` functions or the handler itself.
        self.errors: list[BaseException] = []
        self.stop_timeout = stop_timeout
        self._lock = threading.Lock()
        self._script: deque[Response] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._httpd = _HTTPServer(self)

    # -- lifecycle ---------------------------------------------------------- #

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, for ``OpenAI(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeLLMServer:
        """Serve from a daemon thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("FakeLLMServer is already started")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeLLMServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close connections and the socket, join the threads.

        Idempotent. Raises ``RuntimeError`` if the serving thread does not end
        within ``stop_timeout``.
        """
        if self._stopping.is_set():
            return
        self._stopping.set()  # also wakes handlers waiting in Slow
        deadline = time.monotonic() + self.stop_timeout
        if self._thread is not None:
            # shutdown() blocks until serve_forever() returns: only call it if it runs.
            self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
            handlers = list(self._handler_threads)
        for connection in connections:
            # Wakes handlers blocked reading the next keep-alive request.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        for handler in handlers:
            handler.join(max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            if self._thread.is_alive():
                raise RuntimeError(f"FakeLLMServer did not stop within {self.stop_timeout}s")

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------- #

    def script(self, *responses: Response) -> None:
        """Queue responses, consumed one per chat-completions request, in order."""
        with self._lock:
            self._script.extend(responses)

    @property
    def pending(self) -> int:
        """How many scripted responses are still queued."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget the queued responses, the recorded requests and the errors."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self.errors.clear()

    # -- inspection --------------------------------------------------------- #

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str = CHAT_COMPLETIONS_PATH) -> int:
        """How many requests arrived for ``path`` (query string ignored)."""
        with self._lock:
            return sum(1 for r in self._requests if urlsplit(r.path).path == path)

    # -- used by the handler ------------------------------------------------ #

    def _arrive(self, request: RecordedRequest, *, consume: bool) -> Response | None:
        """Record ``request`` and, if ``consume``, take the response for it."""
        with self._lock:
            self._requests.append(request)
            if not consume:
                return None
            return self._script.popleft() if self._script else self.default

    def _track(self, connection: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections.add(connection)
            self._handler_threads.add(thread)

    def _untrack(self, connection: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections.discard(connection)
            self._handler_threads.discard(thread)

    def _record_error(self, error: BaseException) -> None:
        with self._lock:
            self.errors.append(error)

    def _resolve(self, response: Response, body: dict[str, Any]) -> _Reply | None:
        """The bytes to send for ``response``; ``None`` means close without replying."""
        if isinstance(response, Answer):
            return _json_reply(200, completion_body(response, body))
        if isinstance(response, JSONAnswer):
            return _json_reply(200, completion_body(response.as_answer(), body))
        if isinstance(response, Status):
            payload = response.body if response.body is not None else error_body(response.code)
            return _json_reply(response.code, payload, response.headers)
        if isinstance(response, Malformed):
            return _Reply(200, response.raw, {"content-type": "application/json"})
        if isinstance(response, Slow):
            if self._stopping.wait(response.seconds):
                return None
            return self._resolve(response.then, body)
        if isinstance(response, Disconnect):
            return None
        if isinstance(response, Dynamic):
            try:
                produced = response.fn(body)
            except Exception as error:
                self._record_error(error)
                message = f"Dynamic response raised {type(error).__name__}: {error}"
                return _json_reply(500, error_body(500, message))
            return self._resolve(produced, body)
        raise TypeError(f"not a FakeLLMServer response: {response!r}")


class _HTTPServer(ThreadingHTTPServer):
    """The socket server; ``fake`` holds the state."""

    daemon_threads = True

    def __init__(self, fake: FakeLLMServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host name with socket.getfqdn(),
        # which can stall on a machine with slow reverse DNS; the name is not needed.
        TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away; record anything else."""
        error = sys.exc_info()[1]
        if isinstance(error, _CLIENT_GONE):
            return
        if isinstance(error, OSError) and self.fake._stopping.is_set():
            return  # the connection was shut down under the handler by stop()
        if error is not None:
            self.fake._record_error(error)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Serves one connection (HTTP/1.1 keep-alive, as the SDK's pool expects)."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeLLMServer/1"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection is dropped after this
    # Headers and body go out in two writes; with Nagle's algorithm on, the body
    # waits for the client's delayed ACK and every response costs ~40 ms.
    disable_nagle_algorithm = True

    @property
    def fake(self) -> FakeLLMServer:
        return cast(_HTTPServer, self.server).fake

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, threading.current_thread())

    def finish(self) -> None:
        self.fake._untrack(self.connection, threading.current_thread())
        with contextlib.suppress(*_CLIENT_GONE):
            super().finish()

    def handle(self) -> None:
        try:
            super().handle()
        except _CLIENT_GONE:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """No request logs on stderr."""

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw_body=raw,
            arrived=time.monotonic(),
        )
        is_chat = self.command == "POST" and urlsplit(self.path).path == CHAT_COMPLETIONS_PATH
        # A body that is not a JSON object is refused before the script is consumed.
        response = self.fake._arrive(request, consume=is_chat and isinstance(body, dict))
        if response is not None:
            reply = self.fake._resolve(response, body)
        elif is_chat:
            reply = _json_reply(400, error_body(400, "The request body must be a JSON object."))
        else:
            message = f"Unknown request: {self.command} {self.path}"
            reply = _json_reply(404, error_body(404, message))
        if reply is None:
            self.close_connection = True
            return
        self._send(reply)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except _CLIENT_GONE:
            # The client timed out or closed the connection: nobody to tell.
            self.close_connection = True
