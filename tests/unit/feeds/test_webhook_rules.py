"""The rules of webhook delivery that need no network: signatures a receiver can check,
backoff with jitter, which answers are retried, and stable delivery ids."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from cityops.feeds.webhooks import (
    AttemptResult,
    InvalidSignature,
    RetryPolicy,
    delivery_id_for,
    sign,
    verify_signature,
)

SECRET = "water-company-webhook-secret"
BODY = b'{"event_id":"x:1"}'


def test_the_signature_is_an_hmac_of_timestamp_and_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1760000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1760000000, BODY) == f"sha256={expected}"


def test_a_receiver_accepts_a_fresh_signed_request() -> None:
    signature = sign(SECRET, 1760000000, BODY)
    verify_signature(SECRET, timestamp="1760000000", signature=signature, body=BODY,
                     now=1760000100, tolerance_s=300)


@pytest.mark.parametrize(("timestamp", "signature", "body", "secret", "message"), [
    ("1760000000", None, BODY, SECRET, "missing"),
    ("yesterday", "sha256=00", BODY, SECRET, "not unix seconds"),
    ("1759999000", sign(SECRET, 1759999000, BODY), BODY, SECRET, "replayed"),
    ("1760000000", sign(SECRET, 1760000000, BODY), b'{"event_id":"x:2"}', SECRET,
     "does not match"),
    ("1760000000", sign(SECRET, 1760000000, BODY), BODY, "another-secret-entirely",
     "does not match"),
    # A replay with a fresh timestamp header but the old signature:
    ("1760000050", sign(SECRET, 1760000000, BODY), BODY, SECRET, "does not match"),
])
def test_a_receiver_refuses_tampered_stale_or_replayed_requests(
        timestamp: str, signature: str | None, body: bytes, secret: str,
        message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify_signature(secret, timestamp=timestamp, signature=signature, body=body,
                         now=1760000100, tolerance_s=300)


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=2.0, max_delay_s=60.0)
    rng = random.Random(42)
    for attempt, step in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (9, 60.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays), attempt
        assert max(delays) - min(delays) > step / 4  # jittered, not one fixed value


def test_a_retry_after_answer_is_a_floor_within_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=30.0)
    rng = random.Random(1)
    assert policy.delay(1, rng, retry_after_s=20.0) == 20.0
    assert policy.delay(1, rng, retry_after_s=3600.0) == 30.0
    assert policy.delay(1, rng, retry_after_s=0.0) <= 1.0


@pytest.mark.parametrize(("status", "error", "delivered", "retryable"), [
    (200, None, True, False),
    (204, None, True, False),
    (301, None, False, False),
    (400, None, False, False),
    (401, None, False, False),
    (404, None, False, False),
    (408, None, False, True),
    (429, None, False, True),
    (500, None, False, True),
    (503, None, False, True),
    (None, "timed out", False, True),
    (None, "ConnectionRefusedError: [Errno 111]", False, True),
])
def test_which_answers_deliver_and_which_are_retried(
        status: int | None, error: str | None, delivered: bool, retryable: bool) -> None:
    result = AttemptResult(status=status, error=error, duration_ms=1.0)
    assert result.delivered is delivered
    if not delivered:
        assert result.retryable is retryable


def test_a_delivery_id_is_stable_for_a_subscription_and_an_event() -> None:
    first = delivery_id_for("sub-1", "case:3")
    assert first == delivery_id_for("sub-1", "case:3")
    assert first != delivery_id_for("sub-2", "case:3")
    assert first != delivery_id_for("sub-1", "case:4")
