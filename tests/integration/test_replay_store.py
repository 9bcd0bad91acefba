"""The receivers' Redis replay store waits for its replicas when asked to (``replicas=``), on the real Redis."""

from __future__ import annotations

import uuid

import pytest
import redis

from dispatch.receiver import RedisReplayStore, ReplayStoreError

from .support import TEST_ENV

pytestmark = pytest.mark.integration


@pytest.fixture
def client() -> redis.Redis:
    return redis.Redis.from_url(TEST_ENV["DISPATCH_RESULTS_URL"], socket_timeout=10)


def test_an_id_no_replica_confirmed_is_let_go_and_refused_with_503(client: redis.Redis) -> None:
    assert int(client.info("replication")["connected_slaves"]) == 0  # this Redis has no replica to confirm
    prefix = f"dispatch-replay-{uuid.uuid4().hex[:8]}:"
    store = RedisReplayStore(client, prefix=prefix, replicas=1)
    with pytest.raises(ReplayStoreError, match="replicate"):
        store.add("msg_1", 60)
    assert not client.exists(prefix + "msg_1")  # let go: the sender's retry is not taken for a replay
    plain = RedisReplayStore(client, prefix=prefix)  # no replicas asked for: as before, one SET NX
    assert plain.add("msg_1", 60) is True
    assert plain.add("msg_1", 60) is False
    client.delete(prefix + "msg_1")
