"""The http and ai steps' calls (runtime/jobs/calls.py) against real local HTTP servers:
the recording receiver (tests/fakes/receiver.py) and the fake OpenAI-compatible API
(tests/fakes/openai_server.py). Nothing of ours is mocked; the AI settings, secrets and
token usage are real rows.

Throughout, SECRET is a value that must never come back: not in a result, a StepFailed's
message or detail, nor the exception's string.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection

from runtime.definition.build import build_fields
from runtime.jobs.ai_output import check_output, output_instruction
from runtime.jobs.calls import MAX_BODY_BYTES, StepFailed, ai_call, http_call, redact
from tenants import ai as tenant_ai
from tenants import secrets as tenant_secrets_service
from tenants.models import AiUsage
from tenants.services import Actor
from tests.fakes.base import Answer, FakeServer
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.receiver import Receiver, ReceiverClient

SECRET = "sk-live-9f8e7d6c5b4a"
KEY = "run-1:0"


def leaks(value, secret: str = SECRET) -> bool:
    """Whether the secret shows anywhere in a result or a failure."""
    if isinstance(value, StepFailed):
        return secret in str(value) or secret in value.message or secret in json.dumps(value.detail, default=str)
    return secret in json.dumps(value, default=str)


@pytest.fixture
def rx():
    with Receiver() as server:
        yield server


def call(url: str, **kw):
    args = {"method": "POST", "headers": {}, "body": None, "timeout": 5.0, "idempotency_key": KEY, "secrets": ()}
    args.update(kw)
    return http_call(url=url, **args)


# http: what is sent -------------------------------------------------------------------


def test_a_mapping_body_is_sent_as_json_with_the_idempotency_key(rx):
    result = call(f"{rx.url}/hooks/order", body={"order": "o-1", "total": 12.5, "tags": ["a"]},
                  headers={"X-Shop": "acme"})
    [got] = rx.requests
    assert (got.method, got.path) == ("POST", "/hooks/order")
    assert got.json == {"order": "o-1", "total": 12.5, "tags": ["a"]}
    assert got.headers["content-type"] == "application/json"
    assert got.headers["idempotency-key"] == KEY
    assert got.headers["x-shop"] == "acme"
    assert result["status"] == 200
    assert result["body"]["ok"] is True and result["body"]["path"] == "/hooks/order"
    assert result["headers"]["content-type"] == "application/json"


def test_a_text_body_goes_as_text_and_a_list_as_json(rx):
    call(rx.url, body="plain words")
    call(rx.url, body=[1, 2], method="PUT")
    text, listed = rx.requests
    assert text.text == "plain words" and text.headers["content-type"].startswith("text/plain")
    assert listed.json == [1, 2] and listed.method == "PUT"


def test_an_explicit_idempotency_key_header_wins(rx):
    call(rx.url, headers={"idempotency-key": "mine"})
    assert rx.requests[0].headers["idempotency-key"] == "mine"
    assert rx.count("mine") == 1 and rx.count(KEY) == 0


def test_the_same_key_is_sent_on_every_attempt_so_the_receiver_can_deduplicate(rx):
    rx.fail(2, status=503)
    for _ in range(2):
        with pytest.raises(StepFailed):
            call(rx.url)
    call(rx.url)
    assert rx.count(KEY) == 3


def test_header_values_may_be_any_text(rx):
    call(rx.url, headers={"X-Name": "Zoë", "X-Count": 3, "X-Flag": True, "X-None": None})
    got = rx.requests[0].headers
    assert got["x-name"].encode("latin-1").decode("utf-8") == "Zoë"
    assert (got["x-count"], got["x-flag"]) == ("3", "true") and "x-none" not in got


def test_a_header_value_with_a_line_break_is_refused_without_showing_it(rx):
    with pytest.raises(StepFailed) as failed:
        call(rx.url, headers={"Authorization": f"Bearer {SECRET}\r\nX-Evil: 1"}, secrets=[SECRET])
    assert failed.value.retryable is False and "Authorization" in failed.value.message
    assert not leaks(failed.value) and rx.requests == []


@pytest.mark.parametrize("url", ["ftp://example.com/f", "file:///etc/passwd", "javascript:alert(1)", "", "/relative"])
def test_only_http_and_https_urls_are_called(url):
    with pytest.raises(StepFailed) as failed:
        call(url)
    assert failed.value.retryable is False
    assert "only http and https" in failed.value.message


# http: what comes back ----------------------------------------------------------------


def test_the_answer_keeps_safe_headers_only_lowercased(rx):
    rx.on(headers={"Set-Cookie": "session=abc", "X-Request-Id": "req-7", "ETag": '"v1"', "WWW-Authenticate": "Basic"})
    result = call(rx.url)
    assert result["headers"]["x-request-id"] == "req-7" and result["headers"]["etag"] == '"v1"'
    assert "set-cookie" not in result["headers"] and "www-authenticate" not in result["headers"]
    assert all(name == name.lower() for name in result["headers"])


def test_a_text_answer_is_text_and_an_empty_one_is_null(rx):
    rx.on(body="hello", times=1).on(status=204, body=b"", times=1)
    assert call(rx.url, method="GET")["body"] == "hello"
    empty = call(rx.url, method="DELETE")
    assert empty["status"] == 204 and empty["body"] is None


def test_a_long_answer_is_cut_to_64_kb_of_text(rx):
    rx.on(body={"blob": "x" * 200_000})
    body = call(rx.url)["body"]
    assert isinstance(body, str) and len(body.encode()) <= MAX_BODY_BYTES
    assert body.startswith('{"blob": "xxx')


def test_redirects_are_answered_not_followed(rx):
    rx.on(path="/old", status=302, body="", headers={"Location": "/new"})
    result = call(f"{rx.url}/old", method="GET")
    assert result["status"] == 302 and result["headers"]["location"] == "/new"
    assert [r.path for r in rx.requests] == ["/old"]


# http: failures -----------------------------------------------------------------------


def test_an_error_status_fails_with_the_url_but_not_its_query_or_credentials(rx):
    rx.fail(status=503, body={"error": "down"})
    host = rx.url.removeprefix("http://")
    with pytest.raises(StepFailed) as failed:
        call(f"http://user:pw@{host}/v1/send?token=abc#frag")
    assert failed.value.message == f"POST http://{host}/v1/send answered 503"
    assert failed.value.retryable is True
    assert failed.value.detail["status"] == 503 and "down" in failed.value.detail["body"]
    assert "abc" not in failed.value.message and "pw" not in failed.value.message


@pytest.mark.parametrize("status,retryable", [(500, True), (502, True), (429, True), (408, True), (409, True),
                                              (400, False), (401, False), (404, False), (422, False)])
def test_server_errors_and_throttling_are_retried_other_4xx_are_not(rx, status, retryable):
    rx.fail(status=status)
    with pytest.raises(StepFailed) as failed:
        call(rx.url)
    assert failed.value.retryable is retryable and failed.value.message.endswith(f"answered {status}")


def test_retry_after_is_passed_on(rx):
    rx.fail(status=429, body="slow down", headers={"Retry-After": "7"})
    with pytest.raises(StepFailed) as failed:
        call(rx.url)
    assert failed.value.detail["retry_after"] == 7.0


def test_a_slow_answer_times_out(rx):
    rx.slow(1.5)
    with pytest.raises(StepFailed) as failed:
        call(f"{rx.url}/slow?x=1", timeout=0.3)
    assert failed.value.message == f"POST {rx.url}/slow timed out after 0.3s"
    assert failed.value.retryable is True


def test_a_refused_connection_is_retryable():
    server = Receiver().start()
    url = server.url
    server.stop()
    with pytest.raises(StepFailed) as failed:
        call(f"{url}/gone", method="GET")
    assert failed.value.message == f"GET {url}/gone failed: could not connect"
    assert failed.value.retryable is True
    assert failed.value.__suppress_context__  # no library exception chained to it


def test_the_receiver_also_runs_in_its_own_process():
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.receiver", "--port", "0"], stdout=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parents[3])
    try:
        url = process.stdout.readline().strip()
        remote = ReceiverClient(url)
        remote.fail(1, status=502)
        with pytest.raises(StepFailed):
            call(f"{url}/x")
        assert call(f"{url}/x")["status"] == 200
        assert remote.count(KEY) == 2 and [r.path for r in remote.requests] == ["/x", "/x"]
    finally:
        process.terminate()
        process.wait(timeout=10)


# http: secrets ------------------------------------------------------------------------


class Echo(FakeServer):
    """Answers with everything it received: headers, path, query, body (like some APIs'
    error pages do), with the status asked for in the path."""

    def answer(self, request):
        status = int(request.path.rsplit("/", 1)[-1]) if request.path.rsplit("/", 1)[-1].isdigit() else 200
        echoed = {"headers": request.headers, "path": request.path, "query": request.query, "body": request.text}
        return Answer(status, echoed, {"X-Request-Id": request.headers.get("authorization", "")})


@pytest.fixture
def echo():
    with Echo() as server:
        yield server


def test_secret_values_are_redacted_from_the_answer(echo):
    result = call(f"{echo.url}/hooks/{SECRET}/200?key={SECRET}", headers={"Authorization": f"Bearer {SECRET}"},
                  body={"token": SECRET}, secrets=[SECRET, "unused-secret"])
    assert echo.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent
    assert not leaks(result)
    assert result["body"]["headers"]["authorization"] == "Bearer [secret]"
    assert result["headers"]["x-request-id"] == "Bearer [secret]"
    assert result["body"]["path"] == "/hooks/[secret]/200"


def test_secret_values_are_redacted_from_failures(echo):
    with pytest.raises(StepFailed) as failed:
        call(f"{echo.url}/{SECRET}/503?key={SECRET}", headers={"Authorization": f"Bearer {SECRET}"},
             body={"token": SECRET}, secrets=[SECRET])
    assert not leaks(failed.value)
    assert failed.value.message == f"POST {echo.url}/[secret]/503 answered 503"
    assert "[secret]" in failed.value.detail["body"]


def test_a_timeout_names_no_secret_in_the_path(rx):
    rx.slow(1.0)
    with pytest.raises(StepFailed) as failed:
        call(f"{rx.url}/bot{SECRET}/send", timeout=0.2, secrets=[SECRET])
    assert not leaks(failed.value) and "/bot[secret]/send" in failed.value.message


def test_redact_replaces_at_any_depth_keys_included_and_in_encoded_forms():
    value = {
        "a": [f"x{SECRET}y", {"deep": (SECRET, 3)}],
        SECRET: True,
        "url": "https://h/p?k=a%2Fb%3D",
        "n": 1.5,
        "none": None,
    }
    out = redact(value, [SECRET, "a/b=", ""])
    assert out == {
        "a": ["x[secret]y", {"deep": ["[secret]", 3]}],
        "[secret]": True,
        "url": "https://h/p?k=[secret]",
        "n": 1.5,
        "none": None,
    }
    assert redact("nothing to hide", []) == "nothing to hide"


def test_redact_prefers_the_longest_secret_and_never_rewrites_its_own_marker():
    assert redact("key=abcdef", ["abc", "abcdef"]) == "key=[secret]"
    assert redact("s e c r e t", ["e"]) == "s [secret] c r [secret] t"
    assert redact("e", ["e"]) == "[secret]"  # the marker is not searched again


# ai -----------------------------------------------------------------------------------

OUTPUT = build_fields(
    {
        "priority": {"type": "enum", "values": ["low", "normal", "high", "urgent"], "required": True},
        "summary": {"type": "string", "required": True, "max_length": 80, "description": "One sentence."},
        "score": {"type": "integer", "min": 0, "max": 10},
        "reply_to": {"type": "email"},
        "spam": {"type": "boolean", "default": False},
    },
    "/jobs/triage/steps/0/ai/output",
)
GOOD = {"priority": "high", "summary": "Customer cannot log in.", "score": 7, "reply_to": "a@b.example", "spam": False}


@pytest.fixture
def openai():
    with FakeOpenAI(api_key=SECRET) as server:
        yield server


@pytest.fixture
def configured(acme, alice, openai):
    """Acme's AI settings point at the fake; the key secret is set."""
    actor = Actor(alice)
    tenant_ai.ai_config_set(tenant=acme, base_url=openai.url, model="gpt-test", monthly_token_budget=1000, actor=actor)
    tenant_secrets_service.secret_set(tenant=acme, name="AI_API_KEY", value=SECRET, actor=actor)
    return acme


def ask(tenant, **kw):
    args = {"system": "You triage support tickets.", "prompt": "I cannot log in!", "model": None, "output": OUTPUT,
            "timeout": 5.0, "idempotency_key": KEY}
    args.update(kw)
    return ai_call(tenant_id=tenant.id, **args)


def test_a_valid_answer_is_checked_returned_and_its_tokens_counted(configured, openai):
    openai.reply_json(GOOD, tokens=42)
    answer, tokens = ask(configured)
    assert answer == GOOD and tokens == 42
    assert tenant_ai.tokens_used(configured.id) == 42

    [got] = openai.requests
    assert got.path == "/v1/chat/completions"
    assert got.headers["authorization"] == f"Bearer {SECRET}"
    assert got.idempotency_key == KEY
    body = got.json
    assert body["model"] == "gpt-test"
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert user == {"role": "user", "content": "I cannot log in!"}
    assert system["role"] == "system" and system["content"].startswith("You triage support tickets.")
    for word in ('"priority" (required)', '"low", "normal", "high", "urgent"', '"summary" (required)',
                 "at most 80 characters", "One sentence.", '"score" (optional)', "JSON"):
        assert word in system["content"]


def test_the_step_may_name_its_own_model_and_answer_text_without_output(configured, openai):
    openai.reply_text("Sure, here is a haiku.", tokens=15)
    answer, tokens = ask(configured, output=None, system=None, model="gpt-other")
    assert (answer, tokens) == ("Sure, here is a haiku.", 15)
    body = openai.requests[0].json
    assert body["model"] == "gpt-other" and "response_format" not in body
    assert body["messages"] == [{"role": "user", "content": "I cannot log in!"}]


def test_absent_optional_fields_get_their_default_or_null_and_extra_keys_are_dropped(configured, openai):
    openai.reply_json({"priority": "low", "summary": "Fine.", "mood": "calm"})
    answer, _ = ask(configured)
    assert answer == {"priority": "low", "summary": "Fine.", "score": None, "reply_to": None, "spam": False}


def test_a_json_answer_in_a_markdown_fence_is_accepted(configured, openai):
    openai.reply("```json\n" + json.dumps(GOOD) + "\n```")
    assert ask(configured)[0] == GOOD


@pytest.mark.parametrize(
    "content,message",
    [
        ("this is not JSON", "the model's answer is not valid JSON"),
        ("[1, 2]", "the model's answer is not a JSON object"),
        (json.dumps({"summary": "x"}), "the model's answer is missing 'priority'"),
        (json.dumps({**GOOD, "priority": "critical"}), "'priority' must be one of low, normal, high, urgent"),
        (json.dumps({**GOOD, "priority": None}), "the model's answer is missing 'priority'"),
    ],
)
def test_an_answer_that_does_not_fit_fails_retryably_and_still_counts(configured, openai, content, message):
    openai.reply(content, tokens=33)
    with pytest.raises(StepFailed) as failed:
        ask(configured)
    assert failed.value.message == message
    assert failed.value.retryable is True
    assert failed.value.detail["tokens"] == 33 and failed.value.detail["answer"]
    assert tenant_ai.tokens_used(configured.id) == 33
    assert not leaks(failed.value)


def test_every_problem_is_named_at_once(configured, openai):
    openai.reply_json({"priority": "meh", "score": 11, "reply_to": "nobody", "spam": "no"})
    with pytest.raises(StepFailed) as failed:
        ask(configured)
    assert failed.value.detail["problems"] == [
        "'priority' must be one of low, normal, high, urgent",
        "the model's answer is missing 'summary'",
        "'score' must be at most 10",
        "'reply_to' must be an email address",
        "'spam' must be true or false",
    ]


def test_usage_adds_up_over_calls(configured, openai):
    openai.reply_json(GOOD, tokens=100).reply_json(GOOD, tokens=250)
    ask(configured)
    ask(configured)
    assert AiUsage.objects.get(tenant=configured).tokens == 350


def test_a_spent_budget_refuses_without_calling(configured, openai):
    tenant_ai.record_usage(configured.id, 1000)
    with pytest.raises(StepFailed) as failed:
        ask(configured)
    assert failed.value.retryable is False
    assert failed.value.message == "This month's AI token budget is used up (1,000 of 1,000 tokens)."
    assert openai.requests == []


def test_last_months_usage_does_not_count(configured, openai):
    tenant_ai.record_usage(configured.id, 10**9, month=dt.date(2020, 1, 1))
    openai.reply_json(GOOD)
    assert ask(configured)[0] == GOOD


def test_the_budget_is_checked_before_the_call_so_the_last_call_may_overshoot(configured, openai):
    tenant_ai.record_usage(configured.id, 990)
    openai.reply_json(GOOD, tokens=50)
    ask(configured)
    assert tenant_ai.tokens_used(configured.id) == 1040
    with pytest.raises(StepFailed):
        ask(configured)
    assert len(openai.requests) == 1


def test_a_zero_budget_turns_ai_off(configured, openai, alice):
    tenant_ai.ai_config_set(tenant=configured, base_url=openai.url, model="m", monthly_token_budget=0,
                            actor=Actor(alice))
    with pytest.raises(StepFailed) as failed:
        ask(configured)
    assert failed.value.retryable is False and "turned off" in failed.value.message
    assert openai.requests == []


def test_no_settings_refuse(acme, openai):
    with pytest.raises(StepFailed) as failed:
        ask(acme)
    assert failed.value.retryable is False and "not configured" in failed.value.message
    assert openai.requests == []


def test_an_unset_key_secret_refuses(acme, alice, openai):
    tenant_ai.ai_config_set(tenant=acme, base_url=openai.url, model="m", key_secret="OPENAI_KEY", actor=Actor(alice))
    with pytest.raises(StepFailed) as failed:
        ask(acme)
    assert failed.value.retryable is False
    assert failed.value.message == "The secret OPENAI_KEY, which holds the AI API key, is not set."
    assert openai.requests == []


def test_a_refused_key_fails_for_good_and_never_shows_the_key(configured, openai, alice):
    tenant_secrets_service.secret_set(tenant=configured, name="AI_API_KEY", value="sk-wrong-key-123",
                                      actor=Actor(alice))
    with pytest.raises(StepFailed) as failed:
        ask(configured)
    assert failed.value.retryable is False
    assert failed.value.message == f"POST {openai.url}/chat/completions answered 401"
    assert not leaks(failed.value, "sk-wrong-key-123")
    assert tenant_ai.tokens_used(configured.id) == 0


def test_an_api_error_that_quotes_the_key_is_redacted(configured, openai):
    openai.reply_error(500, message=f"upstream rejected Bearer {SECRET}")
    with pytest.raises(StepFailed) as failed:
        ask(configured)
    assert failed.value.retryable is True
    assert not leaks(failed.value) and "Bearer [secret]" in failed.value.detail["body"]


def test_an_answer_that_is_no_completion_fails_retryably(configured, openai):
    openai.reply(None, raw={"unexpected": True})
    with pytest.raises(StepFailed) as failed:
        ask(configured)
    assert failed.value.retryable is True and "not a chat completion" in failed.value.message


def test_a_slow_model_times_out(configured, openai):
    openai.reply_json(GOOD, delay=1.0)
    with pytest.raises(StepFailed) as failed:
        ask(configured, timeout=0.2)
    assert failed.value.message == f"POST {openai.url}/chat/completions timed out after 0.2s"


def test_the_runner_reads_every_secret_decrypted(configured):
    assert tenant_secrets_service.secrets_for(configured.id) == {"AI_API_KEY": SECRET}


def test_concurrent_usage_records_add_up(committed_tenants, alice):
    tenant, _ = committed_tenants(alice, "Busy", "busy")

    def spend():
        try:
            for _ in range(10):
                tenant_ai.record_usage(tenant.id, 7)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=spend) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tenant_ai.tokens_used(tenant.id) == 6 * 10 * 7


# ai output checks ---------------------------------------------------------------------


def fields(**specs):
    return build_fields(specs, "/out")


@pytest.mark.parametrize(
    "spec,value,problem",
    [
        ({"type": "integer"}, 3, None),
        ({"type": "integer"}, 3.0, None),
        ({"type": "integer"}, 3.5, "an integer"),
        ({"type": "integer"}, True, "an integer"),
        ({"type": "integer"}, "3", "an integer"),
        ({"type": "integer", "min": 1}, 0, "at least 1"),
        ({"type": "decimal"}, 2.25, None),
        ({"type": "float", "max": 1}, 1.5, "at most 1"),
        ({"type": "boolean"}, "yes", "true or false"),
        ({"type": "string"}, 5, "a string of at most 255 characters"),
        ({"type": "string"}, "x" * 256, "at most 255 characters"),
        ({"type": "text", "min_length": 3}, "ab", "at least 3 characters"),
        ({"type": "string", "pattern": "^[A-Z]+$"}, "abc", "text matching ^[A-Z]+$"),
        ({"type": "email"}, "a@b.example", None),
        ({"type": "email"}, "not an email", "an email address"),
        ({"type": "url"}, "https://x.example/a", None),
        ({"type": "url"}, "ftp://x", "an http(s) URL"),
        ({"type": "uuid"}, "5f0c3f0e-8a5b-4f55-9c39-8f0a3c7d3a11", None),
        ({"type": "ref", "to": "Order"}, "order-1", "a UUID"),
        ({"type": "date"}, "2026-02-30", "a date, YYYY-MM-DD"),
        ({"type": "date"}, "2026-02-28", None),
        ({"type": "datetime"}, "2026-02-28T10:00:00Z", None),
        ({"type": "datetime"}, "tomorrow", "a date and time in ISO 8601 with a time zone, like 2026-01-31T14:00:00Z"),
        ({"type": "json"}, {"any": ["thing"]}, None),
        ({"type": "enum", "values": ["a", "b"]}, "c", "one of a, b"),
    ],
)
def test_each_type_is_checked(spec, value, problem):
    checked, problems = check_output(fields(v=spec), {"v": value})
    assert problems == ([] if problem is None else [f"'v' must be {problem}"])


def test_the_instruction_describes_every_field():
    text = output_instruction(fields(
        n={"type": "integer", "min": 0, "max": 5, "required": True},
        when={"type": "datetime"},
        tag={"type": "enum", "values": ["x", "y"]},
    ))
    assert text.splitlines() == [
        "Answer with one JSON object and nothing else. Its keys:",
        '- "n" (required): an integer, at least 0, at most 5',
        '- "when" (optional): a date and time in ISO 8601 with a time zone, like 2026-01-31T14:00:00Z',
        '- "tag" (optional): one of "x", "y"',
        "Use null for an optional key you cannot fill.",
    ]


def test_a_secret_cut_by_the_preview_leaves_no_part_of_it(rx):
    secret = "sk-live-abcdef0123456789"
    rx.on(path="/cut", status=400, body="x" * 1990 + secret + "y" * 100, headers={"Content-Type": "text/plain"})
    with pytest.raises(StepFailed) as failed:
        http_call(method="GET", url=f"{rx.url}/cut", headers={}, body=None, timeout=5, idempotency_key="k",
                  secrets=[secret])
    assert secret[:6] not in json.dumps(failed.value.detail) and "[secret]" in failed.value.detail["body"]


def test_an_answer_with_nan_is_kept_as_text(rx):
    rx.on(path="/nan", body="{\"x\": NaN}", headers={"Content-Type": "application/json"})
    answer = http_call(method="GET", url=f"{rx.url}/nan", headers={}, body=None, timeout=5, idempotency_key="k")
    assert answer["body"] == "{\"x\": NaN}"


def test_a_name_whose_dns_answer_turns_private_after_a_check_never_reaches_inside(rx, settings, monkeypatch):
    """DNS rebinding: the attacker's name answers a public address first, then a private
    one (here, the local receiver's). The address must be checked where the connection is
    made, from the one answer the connection uses: checked on one answer and connected on
    another, the call reached the receiver."""
    settings.PLINTH_OUTBOUND_PRIVATE = False
    port = int(rx.url.rsplit(":", 1)[1].split("/")[0])
    resolve = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host, *args, **kwargs):
        if host != "rebind.example":
            return resolve(host, *args, **kwargs)
        asked.append(host)
        return resolve("93.184.215.14" if len(asked) == 1 else "127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(StepFailed):     # the public address is not reachable from here, or times out
        http_call(method="GET", url=f"http://rebind.example:{port}/x", headers={}, body=None, timeout=0.5,
                  idempotency_key="k")
    assert rx.requests == []
    assert asked == ["rebind.example"]      # one answer, checked and used


def test_a_name_answering_one_private_address_among_public_ones_is_refused(rx, settings, monkeypatch):
    settings.PLINTH_OUTBOUND_PRIVATE = False
    port = int(rx.url.rsplit(":", 1)[1].split("/")[0])
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **kw: resolve(host, *a, **kw) if host != "mixed.example"
                        else resolve("93.184.215.14", *a, **kw) + resolve("127.0.0.1", *a, **kw))
    with pytest.raises(StepFailed) as refused:
        http_call(method="GET", url=f"http://mixed.example:{port}/x", headers={}, body=None, timeout=2,
                  idempotency_key="k")
    assert "public addresses only" in refused.value.message and refused.value.retryable is False
    assert rx.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "169.254.169.254", "10.0.0.1", "[::1]",
                                  # IPv6 forms carrying a private IPv4 address (NAT64, 6to4, IPv4-compatible)
                                  "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]", "[::127.0.0.1]"])
def test_non_public_addresses_are_refused_unless_allowed(rx, settings, host):
    settings.PLINTH_OUTBOUND_PRIVATE = False
    port = rx.url.rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(StepFailed) as refused:
        http_call(method="GET", url=f"http://{host}:{port}/x", headers={}, body=None, timeout=2, idempotency_key="k")
    assert "public addresses only" in refused.value.message and refused.value.retryable is False
    assert rx.requests == []
    settings.PLINTH_OUTBOUND_PRIVATE = True          # development and tests call local servers
    assert http_call(method="GET", url=f"{rx.url}/x", headers={}, body=None, timeout=2,
                     idempotency_key="k")["status"] == 200
