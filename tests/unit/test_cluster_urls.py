"""A cluster's URL list in DISPATCH_BROKER_URL, its random start, and the quorum queue arguments (no services)."""

from __future__ import annotations

import random

import pytest

from dispatch import cluster
from dispatch.cluster import vhost_of
from dispatch.errors import ConfigurationError
from dispatch.settings import Settings

THREE = "amqp://u:pw@r1:5672/prod; amqp://u:pw@r2:5673/prod ;amqp://u:pw@r3/prod;"


def test_a_list_is_validated_and_normalised():
    settings = Settings.from_env({"DISPATCH_BROKER_URL": THREE})
    assert settings.broker_url == "amqp://u:pw@r1:5672/prod;amqp://u:pw@r2:5673/prod;amqp://u:pw@r3/prod"
    assert cluster.split_urls(settings.broker_url)[2] == "amqp://u:pw@r3/prod"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("amqp://u:pw@r1/prod;http://u:pw@r2/prod", r"URL 2 of 2 \(r2:5672\) is not"),
        ("amqp://u:pw@r1/prod;amqp://u:pw@r2/other", r"same vhost.*r1:5672 -> 'prod', r2:5672 -> 'other'"),
        ("amqp://u:pw@r1/prod;amqp:///prod", "URL 2 of 2 names no host"),
        ("amqp://u:pw@r1:port/prod", "URL 1 of 1 is not a URL"),
        ("stub://;amqp://r1/", "stub:// only alone"),
        (" ; ", "must be an amqp://"),
        ("redis://r1", "must be amqp:// or amqps://"),
    ],
)
def test_every_url_of_the_list_is_checked(value, message):
    with pytest.raises(ConfigurationError, match=message) as error:
        Settings.from_env({"DISPATCH_BROKER_URL": value})
    assert "DISPATCH_BROKER_URL" in str(error.value)
    assert "pw@" not in str(error.value).split("is invalid:")[1]  # the reason never repeats a password


def test_single_urls_still_parse():
    assert Settings.from_env({}).broker_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert Settings.from_env({"DISPATCH_BROKER_URL": "stub://"}).broker_url == "stub://"
    assert Settings.from_env({"DISPATCH_BROKER_URL": "amqps://h/v"}).broker_url == "amqps://h/v"


def test_the_vhost_of_a_list_is_its_nodes_vhost():
    assert vhost_of(THREE) == "prod"
    assert vhost_of("amqp://h1/%2F;amqp://h2/%2F") == "/"
    assert vhost_of("amqp://h1:5672") == "/"
    assert vhost_of("amqp://h1/a%2Fb") == "a/b"


def test_each_process_starts_from_a_random_node_and_keeps_its_order():
    text = ";".join(f"amqp://h{i}/v" for i in range(8))
    first = cluster.broker_urls(text)
    assert sorted(first) == sorted(cluster.split_urls(text))
    assert cluster.broker_urls(text) == first  # shuffled once per process
    starts = set()
    for seed in range(40):
        cluster._orders.pop(text + "x", None)
        starts.add(cluster.broker_urls(text + "x", rng=random.Random(seed))[0])
    assert len(starts) > 4  # processes spread over the nodes


def test_nodes_are_described_without_credentials():
    params = cluster.connection_parameters("amqp://u:secret@r1:5711/%2F;amqp://u:secret@r2:5712/%2F")
    described = cluster.describe_nodes(params)
    assert sorted(described.split(", ")) == ["r1:5711", "r2:5712"]
    assert "secret" not in described
    assert cluster.describe_nodes(params[0]) in ("r1:5711", "r2:5712")
    assert cluster.node_of("amqps://u:secret@r9/v") == "r9:5671"


def test_quorum_queues_get_a_delivery_limit_and_at_least_once_dead_lettering():
    from dispatch.brokers.rabbitmq import QuorumRabbitmqBroker, quorum_arguments

    assert Settings.from_env({}).delivery_limit == 20
    with pytest.raises(ConfigurationError, match="DISPATCH_DELIVERY_LIMIT"):
        Settings.from_env({"DISPATCH_DELIVERY_LIMIT": "0"})
    broker = QuorumRabbitmqBroker(url="amqp://u:pw@r1/v;amqp://u:pw@r2/v", delivery_limit=7)
    arguments = broker._build_queue_arguments("calls")
    assert arguments == {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "calls.XQ",
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",  # at-least-once dead-lettering requires it
    }
    assert quorum_arguments(3)["x-delivery-limit"] == 3
    assert len(broker.parameters) == 2


def test_publish_errors_say_what_happened_without_credentials():
    import pika.exceptions
    from dramatiq.errors import ConnectionClosed

    from dispatch.brokers.rabbitmq import QuorumRabbitmqBroker
    from dispatch.publisher import _kind, _what_failed

    broker = QuorumRabbitmqBroker(url="amqp://u:secret@r1:5711/v;amqp://u:secret@r2:5712/v")
    home_down = pika.exceptions.ChannelClosedByBroker(
        404, "NOT_FOUND - home node 'rabbit@r1' of durable queue 'calls' in vhost 'v' is down or inaccessible"
    )
    assert _kind(ConnectionClosed(pika.exceptions.NackError([]))) == "refused"
    assert _kind(ConnectionClosed(home_down)) == "queue"
    assert "home node 'rabbit@r1'" in _what_failed("queue", ConnectionClosed(home_down), broker, "calls")
    lost = ConnectionClosed(pika.exceptions.AMQPConnectionError("all nodes refused"))
    assert _kind(lost) == "unreachable"
    message = _what_failed("unreachable", lost, broker, "calls")
    assert "r1:5711" in message and "r2:5712" in message and "secret" not in message
