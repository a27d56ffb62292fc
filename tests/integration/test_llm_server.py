"""The fake chat-completions server, driven through the real ``openai`` SDK.

These tests pin both the fixture and the SDK behaviour later tests rely on:
which exception each failure becomes, how many requests a retry policy costs,
and how long the SDK waits between retries.

Retry delays, from ``openai._base_client.SyncAPIClient._calculate_retry_timeout``:
a ``retry-after-ms`` or ``retry-after`` header is honoured only when it is
strictly between 0 and 120 seconds. Otherwise (no header, or ``retry-after: 0``)
the SDK sleeps ``min(0.5 * 2**n, 8) * (1 - 0.25 * random())`` before retry
``n + 1``, i.e. 0.375-0.5 s, then 0.75-1 s, then 1.5-2 s... So the error
responses below that must be retried quickly carry ``retry-after-ms: 1``
(``NO_WAIT``): with it, two retries cost milliseconds instead of ~1.5 s.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.llm_server import (
    NO_WAIT,
    Answer,
    Disconnect,
    Dynamic,
    FakeLLMServer,
    JSONAnswer,
    Malformed,
    Response,
    Slow,
    Status,
)

API_KEY = "sk-test-marker"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You improve prompts."},
    {"role": "user", "content": "Summarise the ticket in one line."},
]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


def make_client(server: FakeLLMServer, *, max_retries: int = 0, timeout: float = 5.0) -> OpenAI:
    return OpenAI(
        api_key=API_KEY, base_url=server.base_url, max_retries=max_retries, timeout=timeout
    )


def ask(client: OpenAI, model: str = "gpt-test") -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES)


def gaps(server: FakeLLMServer) -> list[float]:
    """Seconds between consecutive requests, as the server saw them."""
    arrivals = [request.arrived for request in server.requests]
    return [later - earlier for earlier, later in itertools.pairwise(arrivals)]


# --------------------------------------------------------------------------- #
# Answers
# --------------------------------------------------------------------------- #


def test_an_answer_returns_content_and_usage(server: FakeLLMServer) -> None:
    server.script(Answer("Better prompt.", prompt_tokens=31, completion_tokens=4))
    with make_client(server) as client:
        completion = ask(client, model="gpt-echo")

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-echo"  # echoed from the request
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Better prompt."
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (31, 4)
    assert completion.usage.total_tokens == 35
    assert server.requests_to() == 1


def test_an_answer_can_name_its_model_and_finish_reason(server: FakeLLMServer) -> None:
    server.script(Answer("cut", model="served-model", finish_reason="length"))
    with make_client(server) as client:
        completion = ask(client, model="asked-model")
    assert completion.model == "served-model"
    assert completion.choices[0].finish_reason == "length"


def test_a_json_answer_parses(server: FakeLLMServer) -> None:
    server.script(JSONAnswer("Résumé le ticket en une ligne.", rationale="Shorter — clearer."))
    with make_client(server) as client:
        completion = ask(client)

    content = completion.choices[0].message.content
    assert json.loads(content) == {
        "optimized_prompt": "Résumé le ticket en une ligne.",
        "rationale": "Shorter — clearer.",
    }
    assert "Résumé" in content  # ensure_ascii=False: sent as UTF-8, not \u escapes


def test_a_dynamic_answer_sees_the_request(server: FakeLLMServer) -> None:
    def shout(body: dict[str, Any]) -> Response:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        return JSONAnswer(user.upper(), rationale=f"model was {body['model']}")

    server.script(Dynamic(shout))
    with make_client(server) as client:
        completion = ask(client, model="m-1")
    assert json.loads(completion.choices[0].message.content) == {
        "optimized_prompt": "SUMMARISE THE TICKET IN ONE LINE.",
        "rationale": "model was m-1",
    }


def test_a_failing_dynamic_answer_is_a_500_and_is_recorded(server: FakeLLMServer) -> None:
    def broken(body: dict[str, Any]) -> Response:
        raise KeyError("no such message")

    server.script(Dynamic(broken))
    with make_client(server) as client, pytest.raises(openai.InternalServerError) as caught:
        ask(client)
    assert "KeyError" in str(caught.value)
    assert [type(error) for error in server.errors] == [KeyError]


def test_the_script_is_consumed_in_order_then_the_default_answers(server: FakeLLMServer) -> None:
    server.script(Answer("first"), Answer("second"))
    server.default = Answer("default")
    with make_client(server) as client:
        contents = [ask(client).choices[0].message.content for _ in range(4)]
    assert contents == ["first", "second", "default", "default"]
    assert server.pending == 0

    server.script(Answer("queued"))
    server.reset()
    assert (server.pending, server.requests, server.requests_to()) == (0, [], 0)
    with make_client(server) as client:
        assert ask(client).choices[0].message.content == "default"  # reset keeps the default


def test_concurrent_requests_each_get_one_scripted_answer(server: FakeLLMServer) -> None:
    server.script(*(Answer(f"answer {n}") for n in range(8)))
    server.default = Status(500, headers={"x-should-retry": "false"})
    contents: list[str] = []
    lock = threading.Lock()

    with make_client(server) as client:

        def call() -> None:
            content = ask(client).choices[0].message.content
            with lock:
                contents.append(content)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

    assert sorted(contents) == sorted(f"answer {n}" for n in range(8))
    assert server.requests_to() == 8


# --------------------------------------------------------------------------- #
# What the server records
# --------------------------------------------------------------------------- #


def test_the_api_key_arrives_as_a_bearer_token(server: FakeLLMServer) -> None:
    with make_client(server) as client:
        ask(client)
    (request,) = server.requests
    assert request.headers["authorization"] == "Bearer sk-test-marker"
    assert all(name == name.lower() for name in request.headers)


def test_requests_record_the_json_body(server: FakeLLMServer) -> None:
    with make_client(server) as client:
        client.chat.completions.create(model="gpt-body", messages=MESSAGES, temperature=0.25)
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["content-type"] == "application/json"
    assert request.body == {"model": "gpt-body", "messages": MESSAGES, "temperature": 0.25}
    assert json.loads(request.raw_body) == request.body
    assert request.arrived <= time.monotonic()


def test_other_paths_get_a_404_and_leave_the_script_alone(server: FakeLLMServer) -> None:
    server.script(Answer("kept for the chat endpoint"))
    with make_client(server) as client, pytest.raises(openai.NotFoundError) as caught:
        client.models.list()
    assert caught.value.status_code == 404
    assert server.requests_to("/v1/models") == 1
    assert server.requests_to() == 0
    assert server.pending == 1


def test_the_server_writes_no_request_logs(
    server: FakeLLMServer, capfd: pytest.CaptureFixture[str]
) -> None:
    server.script(Answer("ok"), Status(400))
    with make_client(server) as client:
        ask(client)
        with pytest.raises(openai.BadRequestError):
            ask(client)
        with pytest.raises(openai.NotFoundError):
            client.models.list()
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------- #
# Failures, retries and timeouts
# --------------------------------------------------------------------------- #


def test_a_429_with_retry_after_0_is_retried_then_succeeds(server: FakeLLMServer) -> None:
    server.script(Status(429, headers={"retry-after": "0"}), Answer("after the rate limit"))
    with make_client(server, max_retries=2) as client:
        completion = ask(client)

    assert completion.choices[0].message.content == "after the rate limit"
    assert server.requests_to() == 2
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1"]
    # `retry-after: 0` is not "now": the SDK ignores it and backs off 0.375-0.5 s.
    (gap,) = gaps(server)
    assert gap >= 0.37


@pytest.mark.parametrize(
    ("headers", "shortest", "longest"),
    [
        pytest.param({"retry-after": "0"}, 0.37, 2.0, id="retry-after-0-falls-back-to-backoff"),
        pytest.param({}, 0.37, 2.0, id="no-header-backoff"),
        pytest.param({"retry-after": "0.05"}, 0.05, 0.3, id="retry-after-seconds-is-honoured"),
        pytest.param(NO_WAIT, 0.0, 0.3, id="retry-after-ms-1-is-immediate"),
    ],
)
def test_the_first_retry_delay_follows_the_headers(
    server: FakeLLMServer, headers: dict[str, str], shortest: float, longest: float
) -> None:
    server.script(Status(429, headers=headers), Answer("ok"))
    with make_client(server, max_retries=1) as client:
        ask(client)
    (gap,) = gaps(server)
    assert shortest <= gap < longest


def test_repeated_500s_raise_internal_server_error_after_every_retry(
    server: FakeLLMServer,
) -> None:
    # Without a retry header the SDK would sleep ~0.5 s then ~1 s between
    # these attempts; `retry-after-ms: 1` keeps the test to milliseconds.
    server.default = Status(500, headers=NO_WAIT)
    started = time.monotonic()
    with (
        make_client(server, max_retries=2) as client,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        ask(client)

    assert caught.value.status_code == 500
    assert server.requests_to() == 3  # max_retries + 1
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "server_error"  # the SDK unwraps {"error": ...}
    assert time.monotonic() - started < 2.0


def test_a_slow_answer_times_out(server: FakeLLMServer) -> None:
    server.script(Slow(2, Answer("too late")))
    started = time.monotonic()
    with (
        make_client(server, max_retries=0, timeout=0.5) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        ask(client)
    assert 0.4 < time.monotonic() - started < 1.5
    assert server.requests_to() == 1


def test_a_late_write_to_a_client_that_gave_up_is_silent(
    server: FakeLLMServer, capfd: pytest.CaptureFixture[str]
) -> None:
    server.script(Slow(0.5, Answer("nobody is listening")))
    with make_client(server, max_retries=0, timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            ask(client)
        time.sleep(0.6)  # the handler now writes to the closed connection
        assert ask(client).choices[0].message.content == "fake answer"
    assert server.errors == []
    assert capfd.readouterr().err == ""


def test_a_401_raises_authentication_error_without_retrying(server: FakeLLMServer) -> None:
    server.default = Status(401)
    with (
        make_client(server, max_retries=2) as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        ask(client)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert server.requests_to() == 1


def test_a_malformed_body_raises_json_decode_error(server: FakeLLMServer) -> None:
    # A 200 application/json body that is not JSON reaches the caller as the
    # standard library's JSONDecodeError, not as an openai.OpenAIError: code
    # that catches only openai.APIError lets it through. It is not retried.
    server.script(Malformed())
    with (
        make_client(server, max_retries=2) as client,
        pytest.raises(json.JSONDecodeError) as caught,
    ):
        ask(client)
    assert not isinstance(caught.value, openai.OpenAIError)
    assert server.requests_to() == 1


def test_json_of_the_wrong_shape_is_not_validated_by_default(server: FakeLLMServer) -> None:
    # The SDK builds its models without validation: a body with no choices
    # comes back as a ChatCompletion whose `choices` is None.
    server.script(Malformed(b'{"unexpected": true}'), Malformed(b'{"unexpected": true}'))
    with make_client(server) as client:
        assert ask(client).choices is None
    strict = OpenAI(
        api_key=API_KEY,
        base_url=server.base_url,
        max_retries=0,
        timeout=5.0,
        _strict_response_validation=True,
    )
    with strict, pytest.raises(openai.APIResponseValidationError):
        ask(strict)


def test_a_dropped_connection_raises_api_connection_error(server: FakeLLMServer) -> None:
    server.script(Disconnect())
    with make_client(server, max_retries=0) as client, pytest.raises(openai.APIConnectionError):
        ask(client)
    assert server.requests_to() == 1


# --------------------------------------------------------------------------- #
# Lifecycle
# --------------------------------------------------------------------------- #


def test_the_server_stops_promptly_even_with_a_request_in_flight() -> None:
    with FakeLLMServer() as server:
        port = server.port
        assert server.base_url == f"http://127.0.0.1:{port}/v1"
        server.script(Slow(30, Answer("never sent")))
        client = make_client(server, max_retries=0, timeout=10)
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                ask(client)
            except openai.APIConnectionError as error:
                outcome.append(error)

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 5
        while server.requests_to() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        stopping = time.monotonic()

    assert time.monotonic() - stopping < 1.0
    caller.join(5)
    client.close()
    assert len(outcome) == 1  # the client saw the connection close, not a hang
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    server.stop()  # idempotent
