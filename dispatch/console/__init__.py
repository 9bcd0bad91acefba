"""A web console for operators, served by ``dispatch gateway`` under ``/console/`` with the gateway's tokens.

What happened to this call?  The console answers in a browser: an overview (queues,
dead letters, hosts, the outbox backlog), a call's state, outcome and every attempt,
the dead letters (replay, discard), the hosts (limits, breakers, closing one by hand).
Pages are rendered on the server and read without JavaScript.

* :mod:`.session` -- sessions signed with a key derived from the token used; CSRF tokens.
* :mod:`.guard` -- security headers, and no way in without a session or a bearer token,
  checked before anything else.
* :mod:`.views` -- what each page shows, from the queues, Redis and flow control; the actions.
* :mod:`.routes` -- the pages and forms (Jinja2 templates in ``templates/``), :func:`create_console`.
"""

from __future__ import annotations

from .routes import create_console

__all__ = ["create_console"]
