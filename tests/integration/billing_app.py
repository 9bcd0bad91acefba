"""A user's own HTTP task, as the contract shows it: ``class Billing(HttpDispatch)``.

Its worker runs ``dramatiq dispatch.tasks tests.integration.billing_app``;
it consumes only its own queue (``<DISPATCH_QUEUE>-billing``).  ``prepare``
adds a tenant header on every attempt; ``parse`` returns the endpoint's
status and a header of its answer beside the callback protocol's retval.
"""

from __future__ import annotations

from dispatch import HttpDispatch
from dispatch.errors import RemoteExecuteError
from dispatch.wiring import get_settings


class Billing(HttpDispatch):
    queue_name = f"{get_settings().queue}-billing"

    def prepare(self, request):
        request.headers["X-Tenant"] = "acme"
        return request

    def parse(self, answer):
        if answer.headers.get("Content-Type", "").startswith("text/"):
            raise RemoteExecuteError(f"HTTP {answer.status}: the endpoint answered text")
        return {"status": answer.status, "type": answer.headers["Content-Type"], "retval": super().parse(answer)}


billing = Billing()
