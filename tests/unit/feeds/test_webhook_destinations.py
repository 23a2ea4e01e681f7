"""Webhooks never reach the server's own network unless the deployment allows it (issue 10,
item 5): a department user could subscribe `http://127.0.0.1:<port>/...`, the server POSTed
there, and the delivery log answered like a port scanner."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cityops.domain.commands import CommandContext
from cityops.domain.errors import InvalidValue
from cityops.feeds.commands import (
    ReviseSubscription,
    Subscribe,
)
from cityops.feeds.destinations import DestinationPolicy, DestinationRefused, IPAddress, refusal
from cityops.feeds.settings import FeedSettings
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.feeds.subscriptions import Subscriptions
from cityops.feeds.webhooks import (
    DELIVERY_FAILED,
    DESTINATION_REFUSED,
    _PinnedHTTPSConnection,
    post,
)

from .conftest import People

SECRET = "s3cret-for-webhook-signing"
PUBLIC = ipaddress.ip_address("93.184.216.34")


def addresses(*texts: str) -> list[IPAddress]:
    return [ipaddress.ip_address(t) for t in texts]


class FakeDns:
    """A resolver answering what the test says, one answer per lookup (DNS rebinding)."""

    def __init__(self, *answers: list[IPAddress]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.254", "private"),
    ("192.168.1.1", "private"), ("fd12:3456::1", "private"), ("fc00::1", "private"),
    ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::7f00:1", "loopback"), ("2002:a00:1::1", "private"),
    ("192.0.2.1", "private"), ("240.0.0.1", "private"), ("255.255.255.255", "private"),
])
def test_internal_addresses_are_refused_by_default(address: str, why: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_destinations(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_every_address_of_a_name_is_checked() -> None:
    policy = DestinationPolicy(resolver=FakeDns(addresses("93.184.216.34", "10.0.0.5")))
    with pytest.raises(DestinationRefused, match=r"erp\.example is private \(10\.0\.0\.5\)"):
        policy.check_url("https://erp.example/hook")


def test_the_allow_list_admits_ranges_and_host_names_but_not_metadata() -> None:
    ranges = DestinationPolicy(["10.20.0.0/16", "127.0.0.1"],
                               resolver=FakeDns(addresses("10.20.3.4")))
    ranges.check_url("http://erp.city.internal/hook")
    ranges.check_url("http://127.0.0.1:8080/hook")
    with pytest.raises(DestinationRefused):
        ranges.check_url("http://10.21.0.1/hook")
    named = DestinationPolicy(["ERP.city.internal"], resolver=FakeDns(addresses("10.9.9.9")))
    named.check_url("https://erp.city.internal./hook")
    with pytest.raises(DestinationRefused):
        named.check_url("https://other.city.internal/hook")
    tricked = DestinationPolicy(["erp.city.internal"],
                                resolver=FakeDns(addresses("169.254.169.254")))
    with pytest.raises(DestinationRefused, match="metadata"):
        tricked.check_url("https://erp.city.internal/hook")


def test_the_setting_takes_ranges_and_host_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYOPS_FEEDS_WEBHOOK_ALLOWED_DESTINATIONS",
                       '["10.20.0.0/16", "erp.city.internal", "fd12::/64"]')
    settings = FeedSettings()
    assert settings.webhook_allowed_destinations == ["10.20.0.0/16", "erp.city.internal",
                                                     "fd12::/64"]
    monkeypatch.delenv("CITYOPS_FEEDS_WEBHOOK_ALLOWED_DESTINATIONS")
    assert FeedSettings().webhook_allowed_destinations == []  # nothing internal by default
    with pytest.raises(ValueError, match="neither an address range"):
        FeedSettings(webhook_allowed_destinations=["10.0.0.0/33"])


# --- when a subscription is set ------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:5432/", "http://localhost:8000/hook", "http://[::1]:9000/x",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook",
    "http://0.0.0.0:22/", "https://100.64.1.1/h",
])
def test_a_department_cannot_subscribe_an_internal_destination(
        catalogue: Any, hazard_catalogue: Any, people: People, url: str) -> None:
    subscriptions = Subscriptions({"PERSISTENCE_MODULE": "eventsourcing.popo"},
                                  catalogue=catalogue, hazard_catalogue=hazard_catalogue)
    hook = Delivery(kind=DeliveryKind.WEBHOOK, url=url, secret=SECRET)
    with pytest.raises(InvalidValue, match="deliveries go to public addresses only"):
        subscriptions.subscribe(
            Subscribe(department="water", subscription_name="n",
                filter=SubscriptionFilter(stream=Stream.GRID_CASES), triggers=["created"],
                delivery=hook),
            CommandContext(actor=people.water))
    public = Delivery(kind=DeliveryKind.WEBHOOK, url="https://93.184.216.34/hook",
                      secret=SECRET)
    subscription_id = subscriptions.subscribe(
        Subscribe(department="water", subscription_name="n",
            filter=SubscriptionFilter(stream=Stream.GRID_CASES), triggers=["created"],
            delivery=public),
        CommandContext(actor=people.water)).subject
    with pytest.raises(InvalidValue, match="deliveries go to public addresses only"):
        subscriptions.handle(
            ReviseSubscription(subscription_id=subscription_id, subscription_name="n",
                filter=SubscriptionFilter(stream=Stream.GRID_CASES), triggers=["created"],
                delivery=hook),
            CommandContext(actor=people.water))


def test_an_allowed_internal_system_may_be_subscribed(
        catalogue: Any, hazard_catalogue: Any, people: People) -> None:
    subscriptions = Subscriptions({"PERSISTENCE_MODULE": "eventsourcing.popo"},
                                  catalogue=catalogue, hazard_catalogue=hazard_catalogue,
                                  destinations=DestinationPolicy(["127.0.0.0/8"]))
    hook = Delivery(kind=DeliveryKind.WEBHOOK, url="http://127.0.0.1:8080/h", secret=SECRET)
    subscriptions.subscribe(
        Subscribe(department="water", subscription_name="n",
            filter=SubscriptionFilter(stream=Stream.GRID_CASES), triggers=["created"],
            delivery=hook),
        CommandContext(actor=people.water))


# --- when a delivery connects --------------------------------------------------------------


class _Receiver:
    """A local HTTP server that records the requests it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append({"host": self.headers.get("Host", ""), "path": self.path})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    yield server
    server.close()


def test_a_name_that_rebinds_to_an_internal_address_is_refused_at_connect_time(
        receiver: _Receiver) -> None:
    dns = FakeDns([PUBLIC], addresses("127.0.0.1"))
    policy = DestinationPolicy(resolver=dns)
    url = f"http://hooks.example:{receiver.port}/cityops"
    policy.check_url(url)  # when it was subscribed: a public address
    result = post(url, b"{}", {}, 5.0, policy)  # at delivery: it now says loopback
    assert (result.status, result.error, result.refused) == (None, DESTINATION_REFUSED, True)
    assert not result.retryable
    assert receiver.requests == []


def test_a_request_goes_to_the_checked_address_with_the_urls_host(receiver: _Receiver) -> None:
    dns = FakeDns(addresses("127.0.0.1"))
    policy = DestinationPolicy(["hooks.city.internal"], resolver=dns)
    result = post(f"http://hooks.city.internal:{receiver.port}/cityops?x=1", b"{}", {}, 5.0,
                  policy)
    assert result.status == 204 and result.error is None
    assert dns.lookups == ["hooks.city.internal"]  # resolved once, by the check
    assert receiver.requests == [{"host": f"hooks.city.internal:{receiver.port}",
                                  "path": "/cityops?x=1"}]


def test_connection_failures_read_the_same_whatever_the_port(receiver: _Receiver) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    policy = DestinationPolicy(["127.0.0.1/32"])
    refused = post(f"http://127.0.0.1:{closed_port}/x", b"{}", {}, 2.0, policy)
    assert (refused.status, refused.error) == (None, DELIVERY_FAILED)
    assert refused.retryable
    default = post(f"http://127.0.0.1:{receiver.port}/x", b"{}", {}, 2.0)
    assert (default.status, default.error) == (None, DESTINATION_REFUSED)
    assert receiver.requests == []


def test_https_verifies_the_urls_host_name_on_the_checked_address(receiver: _Receiver) -> None:
    wrapped: list[str] = []

    class RecordingContext(ssl.SSLContext):
        """A client context (certificate and host name checked) whose handshake the test
        only records."""

        def wrap_socket(self, sock: socket.socket, *args: Any,  # type: ignore[override]
                        server_hostname: str | None = None, **kwargs: Any) -> socket.socket:
            assert self.check_hostname and self.verify_mode == ssl.CERT_REQUIRED
            wrapped.append(str(server_hostname))
            return sock

    context = RecordingContext(ssl.PROTOCOL_TLS_CLIENT)
    connection = _PinnedHTTPSConnection("hooks.city.internal", receiver.port,
                                        addresses("127.0.0.1"), 5.0, context)
    connection.request("POST", "/h", body=b"{}")
    assert connection.getresponse().status == 204
    connection.close()
    assert wrapped == ["hooks.city.internal"]
    assert receiver.requests[0]["host"] == f"hooks.city.internal:{receiver.port}"
