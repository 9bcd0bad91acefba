"""The console's sign-in: sessions signed with a key derived from the gateway token used, and CSRF tokens.

A session is an opaque cookie value, ``v1.<key id>.<session id>.<expiry>.<mac>``: an
HMAC-SHA256 over the rest with a key derived from the token the operator signed in with.
Nothing is stored on the server, so every gateway process behind a load balancer accepts
it, and it survives a restart; removing a token from ``DISPATCH_GATEWAY_TOKEN`` ends every
session signed in with it (its key is gone), adding one ends none.  A session lasts
:data:`SESSION_SECONDS`.

Every form of a signed-in page carries a CSRF token, an HMAC of the session id, so a form
posted from another site (which cannot read the page) is refused.  The sign-in form itself
carries a double-submit token: a random value both in a short-lived cookie and in the form.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

#: How long a signed-in session lasts, in seconds.
SESSION_SECONDS = 8 * 3600

#: How long a sign-in form may be filled in, in seconds.
SIGN_IN_SECONDS = 3600

_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mac(key: bytes, *parts: str) -> str:
    return _b64(hmac.new(key, ".".join(parts).encode(), hashlib.sha256).digest())


@dataclasses.dataclass(frozen=True)
class Session:
    """A signed-in operator: which token's key signed the session, its id and when it ends."""

    key_id: str
    session_id: str
    expires: int


class Sessions:
    """Signs and checks session cookies and CSRF tokens with keys derived from the accepted tokens."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [token.encode() for token in tokens]
        keys = [hmac.new(token, b"dispatch console session v1", hashlib.sha256).digest() for token in self._tokens]
        self._keys = {hashlib.sha256(key).hexdigest()[:16]: key for key in keys}
        self._key_ids = list(self._keys)

    def key_id_for(self, token: str) -> str | None:
        """The key id of ``token`` if it is an accepted one, compared in constant time with each; else None."""
        given = token.encode()
        found = None
        for key_id, accepted in zip(self._key_ids, self._tokens, strict=True):  # no early exit
            if hmac.compare_digest(given, accepted):
                found = key_id
        return found

    def bearer(self, token: str) -> Session | None:
        """A session for a script's ``Authorization: Bearer`` token, valid for this request only."""
        key_id = self.key_id_for(token)
        return None if key_id is None else Session(key_id, "", int(time.time()))

    def issue(self, key_id: str) -> str:
        """A new session cookie value for the token with ``key_id``."""
        session_id = _b64(secrets.token_bytes(18))
        expires = str(int(time.time()) + SESSION_SECONDS)
        return ".".join([_VERSION, key_id, session_id, expires, _mac(self._keys[key_id], key_id, session_id, expires)])

    def verify(self, cookie: str) -> Session | None:
        """The session this cookie value stands for, or None when it is forged, tampered with or expired."""
        parts = cookie.split(".")
        if not cookie.isascii() or len(parts) != 5 or parts[0] != _VERSION or not parts[3].isdigit():
            return None  # every cookie issued is ASCII (and compare_digest takes no other str)
        _, key_id, session_id, expires, mac = parts
        key = self._keys.get(key_id)
        if key is None or not hmac.compare_digest(mac.encode(), _mac(key, key_id, session_id, expires).encode()):
            return None
        if int(expires) <= time.time():
            return None
        return Session(key_id, session_id, int(expires))

    def csrf_token(self, session: Session) -> str:
        """The CSRF token of every form shown in ``session`` (none is needed with a bearer token)."""
        return _mac(self._keys[session.key_id], "csrf", session.session_id)

    def csrf_ok(self, session: Session, token: str) -> bool:
        """Whether a posted form's token belongs to ``session``; a bearer request needs none."""
        if not session.session_id:
            return True
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())


def sign_in_nonce() -> str:
    """The double-submit value of one sign-in form: in its cookie and in the form."""
    return _b64(secrets.token_bytes(18))


def same_nonce(cookie: str, posted: str) -> bool:
    """Whether a sign-in form came back with the value its cookie holds."""
    return bool(cookie) and hmac.compare_digest(cookie.encode(), posted.encode())
