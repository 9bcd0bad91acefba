"""An HTTP gateway: queue a call and read its outcome from any language.

``POST /calls`` takes the same call a Python client would send with
``URL(...).send(...)`` (or ``send_in(delay, ...)``) and answers ``202`` with the
call's id; ``GET /calls/{id}`` answers ``scheduled``, ``pending``, ``started``,
``cancelled``, ``success`` with the endpoint's ``retval``, or ``failure`` with
the error class and message a Python client's ``res.get()`` would raise;
``DELETE /calls/{id}`` cancels a call no worker has started (``res.cancel()``).
``POST /tasks/{actor_name}`` applies one of the dramatiq actors listed in
``DISPATCH_GATEWAY_ACTORS``, and its outcome is read with the same
``GET /calls/{id}``: outcomes are keyed by message id alone.  It is Celery's
old ``celery_http_gateway`` (``/apply/<task>/``, ``/<task_id>/status/``) with
what that example lacked, each in a module of its own:

* :mod:`.auth` -- a bearer token, compared in constant time; none, no start.
* :mod:`.service` -- a destination policy that denies private addresses, whatever
  ``DISPATCH_DENY_PRIVATE`` says, before anything is queued.
* :mod:`.models` -- bodies validated by :mod:`dispatch.validation`, as ``URL.send()``
  validates its arguments.
* :mod:`.limits` -- a body limit enforced while the body is read.
* :mod:`.actors` -- the actors ``/tasks`` applies, named and checked up front.

:mod:`.app` puts them together: :func:`create_app` and :func:`serve`.
"""

from __future__ import annotations

from .actors import load_actors
from .app import create_app, serve
from .auth import check_tokens
from .limits import BodyLimit
from .models import CallStatus, NewCall, NewTask, Queued
from .service import Gateway

__all__ = [
    "BodyLimit",
    "CallStatus",
    "Gateway",
    "NewCall",
    "NewTask",
    "Queued",
    "check_tokens",
    "create_app",
    "load_actors",
    "serve",
]
