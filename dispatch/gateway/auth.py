"""The gateway's bearer tokens (``DISPATCH_GATEWAY_TOKEN``, several comma-separated while rotating).

With no token the gateway refuses to start: an open gateway is an open proxy into
the network.  A request's token is compared with every accepted one in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import ConfigurationError
from ..settings import Settings

MIN_TOKEN_LENGTH = 16

#: The security scheme in the OpenAPI document; the check itself is :func:`authorization`'s.
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


def authorization(tokens: Sequence[str]) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """The app's dependency: 401 with a challenge unless the request carries one of ``tokens`` (checked first)."""
    accepted = [token.encode() for token in check_tokens(tokens)]

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if credentials is None:
            raise HTTPException(401, "bearer token required", headers={"WWW-Authenticate": 'Bearer realm="dispatch"'})
        given = credentials.credentials.encode()
        matched = False
        for token in accepted:  # no early exit: every token costs the same time
            matched |= hmac.compare_digest(given, token)
        if not matched:
            challenge = 'Bearer realm="dispatch", error="invalid_token"'
            raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": challenge})

    return authorized
