"""The ``http_dispatch`` actor (``dispatch.actor``): ``send`` checks a call as the facade does."""

from __future__ import annotations

import pytest

from dispatch.testing import stub_worker


def test_actor_send_validates_too():
    with stub_worker() as broker:
        from dispatch.tasks import http_dispatch

        with pytest.raises(ValueError, match="not an absolute"):
            http_dispatch.send("file:///etc/passwd")
        with pytest.raises(ValueError, match="not supported"):
            http_dispatch.send("http://h/", "OPTIONS")
        with pytest.raises(ValueError, match="unexpected keyword"):
            http_dispatch.send("http://h/", verb="GET")
        with pytest.raises(ValueError, match="unknown call option 'retries'"):
            http_dispatch.send("http://h/", "GET", {}, {"retries": 3})
        assert broker.queues[http_dispatch.queue_name].qsize() == 0
