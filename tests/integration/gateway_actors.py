"""Actors the gateway tests apply over ``POST /tasks/{actor_name}`` (``DISPATCH_GATEWAY_ACTORS``).

Declared on dispatch's broker, storing results, on a queue of their own
(``<DISPATCH_QUEUE>-tasks``) so that only the worker started with this module
(``dramatiq tests.integration.gateway_actors``) consumes it.  No retries: a
failure is the outcome at once.
"""

from __future__ import annotations

import dramatiq

from dispatch.wiring import get_broker, get_settings

QUEUE = f"{get_settings().queue}-tasks"


@dramatiq.actor(broker=get_broker(), store_results=True, max_retries=0, queue_name=QUEUE)
def add(x, y):
    return x + y


@dramatiq.actor(broker=get_broker(), store_results=True, max_retries=0, queue_name=QUEUE)
def divide(x, y):
    return x / y


@dramatiq.actor(broker=get_broker(), max_retries=0, queue_name=QUEUE)
def forgetful(x):  # stores no result: the gateway refuses to start with it listed
    return x
