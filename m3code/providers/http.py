"""The request loop every adapter shares: one attempt at a time, classified failures, backoff, and an
error message that says what went wrong and what to check."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from m3code import __version__ as _version
from m3code.providers.base import ProviderSettings
from m3code.providers.types import ProviderError, Retrying, StreamEvent

T = TypeVar("T")

# 529 is "overloaded" on Anthropic-style APIs; 408 is a server-side request timeout.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
AUTH_STATUSES = frozenset({401, 403})
# First backoff step in seconds; doubles per retry up to settings.max_backoff.
BASE_BACKOFF = 0.5
BODY_SNIPPET = 500

EventSink = Callable[[StreamEvent], None] | None


class RetryableError(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(
        self, reason: str, *, status: int | None = None, retry_after: float | None = None, kind: str = "http"
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        # "http", "connection" or "stream": picks the advice in the final error message.
        self.kind = kind


def emit(on_event: EventSink, event: StreamEvent) -> None:
    if on_event is not None:
        on_event(event)


def make_client(
    settings: ProviderSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    # One timeout for connect, write, pool and the gap between two bytes read (streams included).
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.timeout),
        headers={"user-agent": f"m3code/{_version}"},
        transport=transport,
    )


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The server's requested wait: `retry-after-ms`, else `Retry-After` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff_delay(retry: int, max_backoff: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `retry` (1-based)."""
    if retry_after is not None:
        return min(max_backoff, retry_after)
    step = min(max_backoff, BASE_BACKOFF * 2 ** (retry - 1))
    # Jitter keeps many clients that failed together from retrying together.
    return step * random.uniform(0.5, 1.0)


def error_message_from_body(body: bytes | str) -> str:
    """The human part of an error body in any of the shapes we meet, else a snippet of the body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:BODY_SNIPPET]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        base = data.get("base_resp")
        if isinstance(base, dict) and base.get("status_msg"):
            return str(base["status_msg"])
        if data.get("message"):
            return str(data["message"])
    return text.strip()[:BODY_SNIPPET]


def _auth_error(detail: str, settings: ProviderSettings, url: str, status: int | None) -> ProviderError:
    return ProviderError(
        f"Authentication failed{f' (HTTP {status})' if status else ''} at {url}: {detail}. Check the API key "
        "(MINIMAX_API_KEY or M3CODE_API_KEY, or api_key in the config) and that the base URL "
        f"{settings.base_url} is the one the key belongs to (api.minimax.io for global keys, "
        "api.minimaxi.com for China).",
        status=status,
    )


def check_status(response: httpx.Response, body: bytes, settings: ProviderSettings, url: str) -> None:
    """Raise for a non-2xx response: RetryableError where another attempt may help, else ProviderError."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = error_message_from_body(body)
    if status in RETRYABLE_STATUSES:
        raise RetryableError(
            f"HTTP {status} from {url}: {detail}",
            status=status,
            retry_after=retry_after_seconds(response.headers),
        )
    if status in AUTH_STATUSES:
        raise _auth_error(detail, settings, url, status)
    hint = ""
    if status == 404:
        hint = f" Check the base URL ({settings.base_url}) and the model name ({settings.model})."
    raise ProviderError(
        f"The model API rejected the request (HTTP {status}) at {url}: {detail}.{hint}", status=status
    )


# MiniMax's native status codes, which can arrive in a 200 body as `base_resp`.
_MINIMAX_RETRYABLE = frozenset({1000, 1001, 1002, 1013, 1039})
_MINIMAX_AUTH = frozenset({1004})
# Error `type`s (Anthropic, OpenAI) that describe a passing condition on the server.
_RETRYABLE_ERROR_TYPES = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "server_error", "timeout_error", "internal_error"}
)
_AUTH_ERROR_TYPES = frozenset({"authentication_error", "permission_error", "invalid_api_key"})


def check_payload_error(data: Any, settings: ProviderSettings, url: str) -> None:
    """Raise for an error carried in a body or stream event rather than in the HTTP status."""
    if not isinstance(data, dict):
        return
    base = data.get("base_resp")
    if isinstance(base, dict) and base.get("status_code"):
        code = base["status_code"]
        msg = f"MiniMax error {code}: {base.get('status_msg', '')}"
        if code in _MINIMAX_AUTH:
            raise _auth_error(msg, settings, url, None)
        if code in _MINIMAX_RETRYABLE:
            raise RetryableError(f"{msg} (from {url})")
        raise ProviderError(f"The model API at {url} returned {msg}")
    err = data.get("error")
    if not err:
        return
    detail = error_message_from_body(json.dumps(data))
    etype = err.get("type") if isinstance(err, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    code = code if isinstance(code, int | str) else None
    if etype in _AUTH_ERROR_TYPES or code in AUTH_STATUSES or code == "invalid_api_key":
        raise _auth_error(detail, settings, url, code if isinstance(code, int) else None)
    # An error without a recognisable type mid-stream is most often an overloaded upstream.
    if etype in _RETRYABLE_ERROR_TYPES or code in RETRYABLE_STATUSES or (etype is None and code is None):
        raise RetryableError(f"error from {url}: {detail}", status=code if isinstance(code, int) else None)
    raise ProviderError(f"The model API at {url} returned an error: {detail}")


def parse_json(text: str | bytes, url: str) -> Any:
    """JSON from the server; garbage is treated like a cut connection (try again)."""
    try:
        return json.loads(text)
    except ValueError as exc:
        snippet = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text)[:200]
        raise RetryableError(f"malformed JSON from {url}: {snippet!r}", kind="stream") from exc


def _classify_transport_error(exc: httpx.TransportError, url: str) -> RetryableError:
    if isinstance(exc, httpx.TimeoutException):
        return RetryableError(f"timed out talking to {url} ({type(exc).__name__})", kind="connection")
    if isinstance(exc, httpx.RemoteProtocolError):
        return RetryableError(f"connection to {url} was cut: {exc}", kind="stream")
    return RetryableError(f"cannot reach {url}: {exc or type(exc).__name__}", kind="connection")


_ADVICE = {
    "connection": "Check that the server at the base URL ({base}) is running and reachable "
    "(network, proxy, firewall); for a slow server raise `request_timeout` in the config.",
    "stream": "The response kept breaking off mid-way: check proxies or load balancers that cut long "
    "streams, or run without streaming (--no-stream, or `stream = false` in the config).",
    "http": "The service is rate-limiting or failing; wait and try again, lower concurrency, or raise "
    "`max_retries`.",
}


async def call_with_retries(
    settings: ProviderSettings,
    url: str,
    attempt: Callable[[], Awaitable[T]],
    on_event: EventSink = None,
) -> T:
    """Run `attempt` until it succeeds, retrying RetryableError and transport failures.

    ProviderError and cancellation pass straight through (no retry).
    """
    retry = 0
    while True:
        try:
            return await attempt()
        except RetryableError as exc:
            failure = exc
        except httpx.UnsupportedProtocol as exc:
            raise ProviderError(f"Bad base URL {settings.base_url!r}: {exc}") from exc
        except httpx.TransportError as exc:
            failure = _classify_transport_error(exc, url)
        if retry >= settings.max_retries:
            attempts = retry + 1
            advice = _ADVICE[failure.kind].format(base=settings.base_url)
            raise ProviderError(
                f"Model call failed after {attempts} attempt{'s' if attempts != 1 else ''}: "
                f"{failure.reason}. {advice}",
                status=failure.status,
                retryable=True,
            )
        retry += 1
        delay = backoff_delay(retry, settings.max_backoff, failure.retry_after)
        emit(on_event, Retrying(attempt=retry, delay=delay, reason=failure.reason))
        await asyncio.sleep(delay)
