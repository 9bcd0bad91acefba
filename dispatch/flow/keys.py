"""The Redis keys of flow control: ``<namespace>:flow:<host>:<what>``, one family per host.

``in-flight`` is a sorted set of the calls holding a slot (message id, scored with its lease's end in ms);
``probe`` holds the message id of the breaker's probe call; ``failures``, ``open`` and ``rate`` are counters.
"""

from __future__ import annotations


def flow_key(namespace: str, host: str, what: str) -> str:
    """The key of ``what`` (``in-flight``, ``rate``, ``failures``, ``open``, ``probe``) for ``host``."""
    return f"{namespace}:flow:{host}:{what}"


def flow_pattern(namespace: str) -> str:
    """A SCAN pattern matching every flow key."""
    return f"{namespace}:flow:*"


def host_of(key: bytes | str) -> str:
    """The host a flow key belongs to."""
    text = key.decode() if isinstance(key, bytes) else key
    return text.split(":flow:", 1)[1].rsplit(":", 1)[0]
