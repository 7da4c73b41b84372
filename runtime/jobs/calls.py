"""The two steps that leave the platform: `http` (an external API) and `ai` (an
OpenAI-compatible model), for the job and workflow runner.

Both take arguments the runner has already evaluated (secrets included) and answer a
JSON-shaped result, or raise `StepFailed`. Whatever they hand back can go straight into a
run history: every secret value used in the call is replaced by `[secret]` in results,
messages and details (`redact`, which the runner also applies to its step records), and a
failure is never chained to the library exception that caused it, so a logged traceback
cannot carry a URL or header either.

- `http_call` sends `Idempotency-Key: <run id>:<step>` (DESIGN.md, Jobs and workflows), a
  JSON body for mappings and lists, follows no redirects, reads at most 64 KB of the answer
  and keeps a safe subset of its headers. A status of 400 and up, a timeout or a broken
  connection is a `StepFailed`, retryable unless retrying cannot help (most 4xx).
- `ai_call` reads the tenant's AI settings (tenants/ai.py) and key secret, refuses when
  they are missing or this month's token budget is spent, posts a chat completion, counts
  the tokens it used, and checks a JSON answer against the step's declared `output` fields
  (runtime/jobs/ai_output.py).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import re
import socket
import time
import uuid
from decimal import Decimal
from typing import Any, Iterable, Mapping
from urllib.parse import quote, quote_plus, urlsplit

import httpcore
import httpx
import structlog
from django.conf import settings

from runtime.definition.model import Field
from runtime.jobs.ai_output import check_output, output_instruction, parse_answer
from tenants.ai import ai_config_of, record_usage, tokens_used
from tenants.secrets import secret_value

log = structlog.get_logger(__name__)


MAX_BODY_BYTES = 64 * 1024             # what an http step keeps of an answer
MAX_AI_BODY_BYTES = 1024 * 1024        # a chat completion is parsed whole, so it may be longer
PREVIEW_CHARS = 2000                   # of an answer's body in a failure's detail
DEFAULT_TIMEOUT = 30.0
REDACTED = "[secret]"
USER_AGENT = "Plinth-jobs/1"

# Answer headers an http step keeps (lowercased): never cookies or auth challenges.
SAFE_HEADERS = frozenset({
    "content-type", "content-length", "content-language", "content-encoding", "location", "etag",
    "last-modified", "date", "cache-control", "expires", "retry-after", "idempotency-key",
    "idempotent-replayed", "x-request-id", "request-id", "x-ratelimit-limit", "x-ratelimit-remaining",
    "x-ratelimit-reset", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "link",
})
# 4xx answers worth trying again: timeout, conflict (an idempotent request still in
# flight), too early, too many requests. Any other 4xx will answer the same next time.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class StepFailed(Exception):
    """A step that did not succeed. `message` is safe to show in run histories (it holds no
    secret value); `retryable` says whether trying again may help; `detail` is data for the
    history (a status, the start of an answer's body, problems found)."""

    def __init__(self, message: str, *, retryable: bool = True, detail: dict | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.detail = detail

    def as_dict(self) -> dict:
        return {"message": self.message, "retryable": self.retryable, "detail": self.detail}


# redaction ------------------------------------------------------------------------------


def _needles(secret_values: Iterable[str]) -> re.Pattern | None:
    found: set[str] = set()
    for value in secret_values:
        if isinstance(value, str) and value:
            # as sent, and as it looks inside a URL or a JSON string
            found.update({value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]})
    if not found:
        return None
    # one pass, longest first: a replacement is never searched again
    return re.compile("|".join(re.escape(n) for n in sorted(found, key=len, reverse=True)))


def redact(value: Any, secret_values: Iterable[str]) -> Any:
    """`value` with every occurrence of a secret value, in strings at any depth (mapping
    keys included), replaced by `[secret]`. Other values pass through unchanged.

    >>> redact({"auth": "Bearer sk-123", "n": 1}, ["sk-123"])
    {'auth': 'Bearer [secret]', 'n': 1}
    """
    return _scrub(value, _needles(secret_values))


def _scrub(value: Any, pattern: re.Pattern | None) -> Any:
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {_scrub(k, pattern): _scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, pattern) for v in value]
    return value


def display_url(url: str) -> str:
    """The URL as messages show it: no userinfo, no query string, no fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path


# http -----------------------------------------------------------------------------------


def http_call(
    *,
    method: str,
    url: str,
    headers: Mapping[str, Any],
    body: Any,
    timeout: float | None,
    idempotency_key: str,
    secrets: Iterable[str] = (),
) -> dict:
    """Call an external API; answers `{"status", "headers", "body"}` (body: parsed JSON when
    the answer says it is JSON, else text; None when empty; text cut at 64 KB when longer).

    `secrets` are the secret VALUES this call uses: they are redacted from everything it
    answers or raises.
    """
    return _call(method, url, headers, body, timeout, idempotency_key, secrets, MAX_BODY_BYTES)


def _call(method, url, headers, body, timeout, idempotency_key, secrets, max_body) -> dict:
    secrets = [v for v in secrets if v]
    pattern = _needles(secrets)
    method = (method or "GET").upper()
    timeout = float(timeout) if timeout and timeout > 0 else DEFAULT_TIMEOUT
    where = f"{method} {display_url(url) if isinstance(url, str) else '(not a URL)'}"

    def failed(message: str, retryable: bool, detail: dict | None = None) -> StepFailed:
        return StepFailed(_scrub(message, pattern), retryable=retryable, detail=_scrub(detail, pattern))

    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise failed(f"{where}: only http and https URLs can be called.", False)
    send_headers, content = _request_parts(where, headers, body, idempotency_key, failed)

    started = time.monotonic()
    deadline = started + timeout
    # outside development, the address is checked where the connection is made (see
    # _PublicOnly): a DNS answer that changes after a check cannot slip past it
    transport = None if settings.PLINTH_OUTBOUND_PRIVATE else _PublicTransport()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, transport=transport) as client:
            with client.stream(method, url, headers=send_headers, content=content) as response:
                raw, truncated = _read(response, max_body, deadline)
                status, answer_headers = response.status_code, response.headers
                encoding = response.charset_encoding or "utf-8"
    except (httpx.TimeoutException, _Deadline):
        raise failed(f"{where} timed out after {timeout:g}s", True, {"timeout": timeout}) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise failed(f"{where}: the URL is not valid.", False) from None
    except httpx.TransportError as exc:
        if isinstance(exc, httpx.ConnectError) and str(exc) == NOT_PUBLIC:
            raise failed(f"{where}: {NOT_PUBLIC}", False) from None
        raise failed(f"{where} failed: {_transport_reason(exc)}", True) from None
    elapsed_ms = round((time.monotonic() - started) * 1000)
    log.info("jobs.http_call", target=_scrub(where, pattern), status=status, duration_ms=elapsed_ms)

    kept = {k.lower(): v for k, v in answer_headers.items() if k.lower() in SAFE_HEADERS}
    answer_body = _parse_body(raw, truncated, encoding, answer_headers.get("content-type", ""))
    if truncated and isinstance(answer_body, str) and secrets:
        # the cut may have gone through a secret, which the scrub below cannot recognise
        answer_body = answer_body[: max(0, len(answer_body) - 3 * max(len(v) for v in secrets))] + "…"
    if status >= 400:
        detail = {"status": status, "body": _preview(answer_body, pattern)}
        retry_after = _retry_after(answer_headers.get("retry-after"))
        if retry_after is not None:
            detail["retry_after"] = retry_after
        raise failed(f"{where} answered {status}", status >= 500 or status in RETRYABLE_4XX, detail)
    return _scrub({"status": status, "headers": kept, "body": answer_body}, pattern)


NOT_PUBLIC = "its address is not a public one; calls reach public addresses only (PLINTH_OUTBOUND_PRIVATE)."


# IPv6 prefixes that carry an IPv4 address in their last 32 bits, which a translator on
# the way (NAT64, DNS64) may reach: the IPv4 address must be a public one too
_EMBEDDING = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96"))


def _public(address: str) -> bool:
    try:
        found = ipaddress.ip_address(address.split("%", 1)[0])     # an IPv6 scope (`%eth0`) aside
    except ValueError:
        return False
    if not found.is_global or found.is_multicast:
        return False
    if isinstance(found, ipaddress.IPv6Address):
        inner = [found.ipv4_mapped, found.sixtofour, *(found.teredo or ())]
        if any(found in net for net in _EMBEDDING):
            inner.append(ipaddress.IPv4Address(int(found) & 0xFFFFFFFF))
        return all(_public(str(v4)) for v4 in inner if v4 is not None)
    return True


class _PublicOnly(httpcore.SyncBackend):
    """Connections to public addresses only. The host is resolved here, once; if any of its
    addresses is a loopback, private, link-local (cloud metadata), shared, reserved or
    multicast one, nothing is connected (`NOT_PUBLIC`); otherwise the connection goes to
    the addresses just checked, never to a name resolved again. So a DNS answer that
    changes between a check and the connection (DNS rebinding) cannot reach inside. TLS
    still names and verifies the host (httpcore passes it to the handshake, not here)."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError):
            raise httpcore.ConnectError("the name does not resolve") from None
        addresses = list(dict.fromkeys(sockaddr[0] for *_, sockaddr in found))
        if not addresses or not all(_public(a) for a in addresses):
            raise httpcore.ConnectError(NOT_PUBLIC)
        failure: Exception | None = None
        for address in addresses:       # the next one if one cannot be reached, as create_connection does
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure       # type: ignore[misc]


class _PublicTransport(httpx.HTTPTransport):
    """httpx's transport over `_PublicOnly`. httpx does not take a network backend, so its
    connection pool is made again with one (`_pool`: httpx 0.28's, pinned; the tests of
    calls.py fail if that changes)."""

    def __init__(self):
        context = httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=context, trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=_PublicOnly())


class _Deadline(Exception):
    pass


def _request_parts(where, headers, body, idempotency_key, failed) -> tuple[dict[str, str | bytes], bytes | None]:
    send: dict[str, str | bytes] = {"User-Agent": USER_AGENT}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise failed(f"{where}: {name!r} is not a valid header name.", False)
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if any(c in text for c in "\r\n\0"):
            # never show the value: it may be (or hold) a secret
            raise failed(f"{where}: the value of header {name} holds a line break or NUL.", False)
        # httpx encodes header values as ASCII; anything else goes as UTF-8 bytes
        send[name] = text if text.isascii() else text.encode("utf-8")
    lower = {k.lower() for k in send}
    if "idempotency-key" not in lower:  # an explicit header in the definition wins
        send["Idempotency-Key"] = idempotency_key
    if body is None:
        return send, None
    if isinstance(body, bytes):
        return send, body
    if isinstance(body, str):
        if "content-type" not in lower:
            send["Content-Type"] = "text/plain; charset=utf-8"
        return send, body.encode("utf-8")
    try:
        content = json.dumps(body, default=_json_default, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        raise failed(f"{where}: the body cannot be sent as JSON.", False) from None
    if "content-type" not in lower:
        send["Content-Type"] = "application/json"
    return send, content


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # JSON has one number type; integral decimals stay exact
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _read(response: httpx.Response, limit: int, deadline: float) -> tuple[bytes, bool]:
    """At most `limit` bytes of the (decoded) body, and whether there was more."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        if time.monotonic() > deadline:
            raise _Deadline()
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def _parse_body(raw: bytes, truncated: bool, encoding: str, content_type: str) -> Any:
    if not raw:
        return None
    try:
        text = raw.decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", errors="replace")
    # Postgres text and jsonb cannot hold NUL, and JSON has no NaN or Infinity: a body with
    # them is kept with NUL replaced, as text
    text = text.replace("\x00", "\ufffd")
    if not truncated and "json" in content_type.lower() and "\\u0000" not in text:
        try:
            return json.loads(text, parse_constant=_no_constant)
        except ValueError:
            pass
    return text


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _preview(body: Any, pattern: re.Pattern | None = None) -> str | None:
    """The start of a body for a failure's detail: secrets scrubbed from the whole text
    first, so that a cut through one cannot leave part of it."""
    if body is None:
        return None
    text = _scrub(body if isinstance(body, str) else json.dumps(body, ensure_ascii=False), pattern)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, (parsedate_to_datetime(value) - dt.datetime.now(dt.UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _transport_reason(exc: httpx.TransportError) -> str:
    # the library's own text may quote the URL: name the kind of failure instead
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server did not answer valid HTTP"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return "the connection broke"
    if isinstance(exc, httpx.ProxyError):
        return "the proxy refused"
    return f"the request failed ({type(exc).__name__})"


# ai -------------------------------------------------------------------------------------


def ai_call(
    *,
    tenant_id: str,
    system: str | None,
    prompt: str,
    model: str | None,
    output: Mapping[str, Field] | None,
    timeout: float | None,
    idempotency_key: str,
    secrets: Iterable[str] = (),
) -> tuple[dict | str, int]:
    """Ask the tenant's model; answers (the checked JSON object when `output` is declared,
    else the text, and the tokens the call used). `secrets` are secret values used in the
    step's arguments; the API key is always redacted too."""
    config = ai_config_of(tenant_id)
    if config is None:
        raise StepFailed(
            "AI is not configured for this tenant: set it in the console or with PUT /api/v1/tenants/<slug>/ai.",
            retryable=False,
        )
    budget = config.monthly_token_budget
    if budget <= 0:
        raise StepFailed("AI steps are turned off for this tenant (its monthly token budget is 0).", retryable=False)
    key = secret_value(tenant_id, config.key_secret)
    if not key:
        raise StepFailed(f"The secret {config.key_secret}, which holds the AI API key, is not set.", retryable=False)
    used = tokens_used(tenant_id)
    if used >= budget:
        raise StepFailed(
            f"This month's AI token budget is used up ({used:,} of {budget:,} tokens).",
            retryable=False,
            detail={"tokens_used": used, "monthly_token_budget": budget},
        )
    pattern = _needles([key, *secrets])
    instruction = output_instruction(output) if output else None
    system_text = "\n\n".join(str(part) for part in (system, instruction) if part)
    messages = [{"role": "system", "content": system_text}] if system_text else []
    messages.append({"role": "user", "content": str(prompt)})
    payload: dict[str, Any] = {"model": str(model or config.model), "messages": messages}
    if output:
        payload["response_format"] = {"type": "json_object"}
    response = _call(
        "POST", f"{config.base_url}/chat/completions", {"Authorization": f"Bearer {key}"}, payload,
        timeout, idempotency_key, [key, *secrets], MAX_AI_BODY_BYTES,
    )

    completion = response["body"]
    if isinstance(completion, str):  # JSON sent without a JSON content type
        try:
            completion = json.loads(completion)
        except ValueError:
            pass
    tokens = _tokens(completion)
    if tokens:
        record_usage(tenant_id, tokens)
    content = _content(completion)
    if content is None:
        raise StepFailed(
            "The AI API's answer is not a chat completion with a text message.",
            detail=_scrub({"body": _preview(completion, pattern), "tokens": tokens}, pattern),
        )
    if not output:
        return content, tokens
    answer, problems = check_output(output, parse_answer(content))
    if problems:
        raise StepFailed(
            _scrub("; ".join(problems), pattern),
            detail=_scrub({"problems": problems, "answer": _preview(content, pattern), "tokens": tokens}, pattern),
        )
    return answer, tokens


def _tokens(completion: Any) -> int:
    usage = completion.get("usage") if isinstance(completion, dict) else None
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if not isinstance(total, int) or isinstance(total, bool):
        parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
        total = sum(p for p in parts if isinstance(p, int) and not isinstance(p, bool))
    return max(0, total)


def _content(completion: Any) -> str | None:
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, str) else None
