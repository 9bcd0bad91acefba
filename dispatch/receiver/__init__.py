"""The receiving end: serve plain Python functions as endpoints that speak the callback protocol.

Any web framework can answer ``{"status": "success", "retval": ...}``, but
every hand-written endpoint repeats the same chores: collect the arguments
from the query or the form body, catch exceptions into ``failure`` answers,
encode JSON, and -- when calls are signed -- check the signature before
anything runs.  :class:`Receiver` does those once::

    from dispatch.receiver import Receiver

    def multiply(x, y):
        return int(x) * int(y)

    app = Receiver(multiply)                                   # a WSGI app
    app = Receiver({"/multiply": multiply, "/divide": divide}, secret="whsec_...")

Every method a call may use is answered (GET, POST, PUT, PATCH, DELETE).
Arguments come from the query string for GET and from the body otherwise --
the URL's own query is not read then, because only the body is signed.  A
form value arrives as a string (a repeated key as a list of strings); a JSON
body (``Content-Type: application/json``) is one object whose members arrive
with their JSON types.

One core (:meth:`Receiver.handle`, in ``_core``) and thin adapters (one module each): the object itself is a
WSGI app; :meth:`~Receiver.as_asgi` (FastAPI/Starlette ``mount``),
:meth:`~Receiver.flask_view` and :meth:`~Receiver.django_view` wrap it.
No framework is imported until its adapter is asked for.

**Replays.**  A signature stays valid for the whole timestamp tolerance (5
minutes either way), so a signed receiver also remembers every ``webhook-id``
it has accepted until that id's timestamp leaves the window, and answers
``409 Conflict`` to the same id again -- on any of its routes, since the path
is not signed.  By default the ids are kept in the process's memory
(:class:`MemoryReplayStore`, shared by every Receiver of the process, bounded
and expiring); several processes or hosts serving the same endpoints must
share a :class:`RedisReplayStore`::

    store = RedisReplayStore.from_url("redis://...")   # or redis+sentinel://host:port,.../service
    app = Receiver(multiply, secret="whsec_...", replay_store=store)

A store that cannot answer (Redis down, the memory store full) makes the
receiver answer ``503`` with ``Retry-After``: it fails closed, and the
dispatch worker retries a 503.  A sender that retries after losing an answer
sends the same id again and gets the 409: the function ran once.

Layout: ``_core`` (the Receiver), ``_arguments`` (reading and checking a
request's arguments), ``_replay`` (the stores), ``_exchange`` (the request and
reply every adapter translates to and from), and one module per adapter:
``_wsgi``, ``_asgi``, ``_flask``, ``_django``.
"""

from ._core import Receiver, receiver
from ._exchange import FORM, JSON, METHODS, Incoming, Reply
from ._replay import DEFAULT_REPLAY_STORE, MemoryReplayStore, RedisReplayStore, ReplayStore, ReplayStoreError

__all__ = [
    "DEFAULT_REPLAY_STORE",
    "FORM",
    "JSON",
    "METHODS",
    "Incoming",
    "MemoryReplayStore",
    "Receiver",
    "RedisReplayStore",
    "ReplayStore",
    "ReplayStoreError",
    "Reply",
    "receiver",
]
