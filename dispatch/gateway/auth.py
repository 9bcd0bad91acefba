"""The gateway's bearer tokens (``DISPATCH_GATEWAY_TOKEN``, several comma-separated while rotating), checked first.

With no token the gateway refuses to start: an open gateway is an open proxy into
the network.  :class:`BearerAuth` checks a request's token from its headers alone,
before routing, parsing or validation: FastAPI reads and parses a body before it
runs any dependency, so a dependency would let a stranger learn what the parser
thinks of a body (a 422 with its details).  The token is compared with every
accepted one in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence

from fastapi.security import HTTPBearer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigurationError
from ..settings import Settings

MIN_TOKEN_LENGTH = 16

#: The security scheme in the OpenAPI document; the check itself is :class:`BearerAuth`'s.
bearer = HTTPBearer(auto_error=False, description=f"One of the tokens in {Settings.env('gateway_tokens')}.")


def check_tokens(tokens: Sequence[str]) -> list[str]:
    """The accepted tokens; ConfigurationError when there are none or one is too short to be a secret."""
    variable = Settings.env("gateway_tokens")
    tokens = [token.strip() for token in tokens if token.strip()]
    if not tokens:
        raise ConfigurationError(
            f"{variable} is not set: the gateway refuses to run without a bearer token. Create one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` (several, comma-separated, while rotating)"
        )
    if any(len(token) < MIN_TOKEN_LENGTH for token in tokens):
        raise ConfigurationError(f"{variable}: every token must be at least {MIN_TOKEN_LENGTH} characters long")
    return tokens


class BearerAuth:
    """ASGI middleware: a request without one of ``tokens`` is answered 401, from its headers alone.

    Whatever its method, path or body: nothing of it is routed, read or parsed.  The answer is one
    line (``{"detail": ...}``) with a ``WWW-Authenticate: Bearer`` challenge, and closes the
    connection, so a body sent after the headers is not drained either.  Requests ``is_open``
    accepts pass unchecked: the app's public documents, and apps mounted with a door of their own.
    """

    def __init__(self, app: ASGIApp, tokens: Sequence[str], is_open: Callable[[Scope], bool]) -> None:
        self.app = app
        self.accepted = [token.encode() for token in check_tokens(tokens)]
        self.is_open = is_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.is_open(scope):
            authorization = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
            refusal = self._refusal(authorization)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, authorization: bytes) -> JSONResponse | None:
        """The 401 for this ``Authorization`` header, or None if it carries an accepted token."""
        scheme, _, given = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not given.strip():
            return self._unauthorized("bearer token required", 'Bearer realm="dispatch"')
        matched = False
        for token in self.accepted:  # no early exit: every token costs the same time
            matched |= hmac.compare_digest(given.strip(), token)
        if matched:
            return None
        return self._unauthorized("invalid bearer token", 'Bearer realm="dispatch", error="invalid_token"')

    @staticmethod
    def _unauthorized(detail: str, challenge: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, 401, {"WWW-Authenticate": challenge, "Connection": "close"})
