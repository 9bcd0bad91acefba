"""Signed calls: Standard Webhooks signatures, so a receiver knows a call came from you.

A receiver that anyone can reach will run anyone's call.  With a shared
secret the sender adds three headers and the receiver checks them before
doing anything (https://www.standardwebhooks.com/, the scheme Svix and
many webhook providers use -- libraries exist for most languages, so
receivers not written in Python can verify too)::

    webhook-id:         the message id (also sent as Idempotency-Key)
    webhook-timestamp:  seconds since the epoch, as an integer
    webhook-signature:  v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<payload>">

The HMAC key is the secret ``whsec_<base64>`` with the prefix dropped and the
rest base64-decoded.  Several signatures may be given, space-separated, and a
receiver may hold several secrets: that is how secrets are rotated without
downtime.

**What the payload is.**  Standard Webhooks signs the request body.  A GET
call has no body -- its arguments travel in the query string -- so for GET
the payload is the exact bytes of the query string (what follows ``?`` in the
request target, without the ``?``).  :func:`signed_payload` encodes that rule
and both sides use it.  The path is *not* signed, for either method, exactly
as Standard Webhooks leaves the URL unsigned: proxies and framework mounts
rewrite paths (``/hooks/multiply`` becomes ``/multiply``), while every server
hands the query string over untouched.  See docs/protocol.md, "Signatures on the wire".

**What a signature covers.**  The message id (``webhook-id``), the
timestamp (``webhook-timestamp``) and the payload above, byte for byte:
change any of them and the signature no longer matches.  A valid signature
proves the request was made by a holder of the secret, for this id, at about
this time, with these arguments.

**What it does not cover.**

* *The method, host, path and port.*  A captured request can be sent to
  another route or another receiver that holds the same secret.  Give each
  receiver its own secret; within one :class:`~dispatch.receiver.Receiver`
  the replay store below refuses an id already seen on any of its routes.
* *Every other header* -- ``Content-Type``, ``Idempotency-Key``,
  ``Authorization``, cookies -- can be added, removed or changed in transit.
  (The receiver reads form arguments from a POST body whatever the
  Content-Type says, as long as it is form-encoded or absent.)
* *For GET, the body*, and *for POST, the URL's query string*: neither
  is signed, and :class:`~dispatch.receiver.Receiver` reads neither.
* *Confidentiality.*  Nothing is encrypted: use https:// so the arguments
  (and the signature, which lets anyone replay them) cannot be read.
* *Freshness beyond the tolerance.*  :func:`verify` refuses a timestamp more
  than ``tolerance`` seconds (5 minutes by default) from the receiver's
  clock, either way; within that window the same signed request verifies
  again.  :func:`verify` alone does not refuse such a replay:
  :class:`~dispatch.receiver.Receiver` does, by remembering every accepted
  ``webhook-id`` until its timestamp leaves the window (in memory, or in
  Redis shared by several processes -- :mod:`dispatch.receiver`).
* *Exactly-once delivery.*  A sender that retries after losing an answer
  sends the same id again; a Receiver refuses it as a replay (409), so the
  function ran once but the sender sees the refusal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _random
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

from .errors import DispatchError

SECRET_PREFIX = "whsec_"

#: How far a webhook-timestamp may be from the receiver's clock, either way.
DEFAULT_TOLERANCE = 300

#: Standard Webhooks recommends secrets of 24 to 64 random bytes.
MIN_SECRET_BYTES = 24

#: Methods whose arguments travel in the query string, so the query is what is signed.
QUERY_METHODS = frozenset({"GET", "HEAD"})

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

#: A webhook-timestamp: ASCII digits only (``str.isdigit`` also accepts "²" and Arabic-Indic digits), and few enough
#: of them that no arithmetic on it overflows -- 12 digits reach the year 33658.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class SignatureError(DispatchError):
    """A request's signature headers are missing, malformed, stale, or match none of the secrets."""


class Verified(NamedTuple):
    """What :func:`verify` vouches for: the message id and the timestamp it was signed with."""

    msg_id: str
    timestamp: int


def generate_secret(nbytes: int = 32) -> str:
    """A fresh random secret in the ``whsec_<base64>`` form every Standard Webhooks library reads."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(nbytes)).decode()


def check_secret(text: str) -> str:
    """Return ``text`` if it is a usable secret, else raise ValueError saying why.

    Meant as a settings parser: a typo in a secret should stop start-up, not
    make every signature silently wrong.
    """
    _key(text)
    return text


def _key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional)."""
    if not isinstance(secret, str):
        raise ValueError(f"a signing secret must be a string, not {type(secret).__name__}")
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    hint = "generate one with: python -c 'from dispatch.signing import generate_secret; print(generate_secret())'"
    try:
        # Some providers hand out unpadded base64, so padding is restored first.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"a signing secret is 'whsec_' followed by base64, which this is not; {hint}") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"a signing secret must hold at least {MIN_SECRET_BYTES} random bytes, this one has {len(key)}; {hint}"
        )
    return key


def signed_payload(method: str, *, query: str | bytes = b"", body: bytes | None = b"") -> bytes:
    """What a request's signature covers: the query string for GET (and HEAD), the body otherwise.

    ``query`` is the raw query string, without the ``?``, exactly as it was
    sent (percent-encoding untouched); a ``str`` is encoded as UTF-8.
    Sender and receiver must both call this, so they agree byte for byte.
    """
    if method.upper() in QUERY_METHODS:
        return query.encode() if isinstance(query, str) else bytes(query)
    return bytes(body or b"")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message under one secret."""
    return "v1," + base64.b64encode(_digest(_key(secret), msg_id, int(timestamp), body)).decode()


def signature_headers(secret: str | Sequence[str], msg_id: str, body: bytes, now: int | None = None) -> dict[str, str]:
    """The three headers that sign ``body`` (a :func:`signed_payload`) as message ``msg_id``.

    Given several secrets (while rotating), the signature header carries one
    signature per secret, so receivers holding either secret accept it.
    """
    timestamp = int(time.time() if now is None else now)
    signatures = [sign(s, msg_id, timestamp, body) for s in _secret_list(secret)]
    return {HEADER_ID: msg_id, HEADER_TIMESTAMP: str(timestamp), HEADER_SIGNATURE: " ".join(signatures)}


def sign_request(
    secret: str | Sequence[str],
    msg_id: str,
    method: str,
    url: str,
    body: bytes | str | None = b"",
    now: int | None = None,
) -> dict[str, str]:
    """The signature headers for a request about to be sent, from its final URL and body.

    Sign what goes on the wire: with requests, prepare the request first and
    pass ``prepared.method``, ``prepared.url`` and ``prepared.body`` (a form
    body is a ``str`` there; it is encoded as UTF-8, as requests sends it).
    """
    encoded = body.encode() if isinstance(body, str) else body
    payload = signed_payload(method, query=urlsplit(url).query, body=encoded)
    return signature_headers(secret, msg_id, payload, now)


def verify(
    body: bytes,
    headers: Mapping,
    secrets: str | Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> Verified:
    """Return the id and timestamp if ``headers`` sign ``body`` under one of ``secrets``; else SignatureError.

    ``headers`` may be any mapping a web framework gives you -- a dict,
    Flask's or Django's ``request.headers``, Starlette's ``Headers``, a WSGI
    environ or Django's ``request.META`` (``HTTP_WEBHOOK_ID``): names are
    matched case-insensitively.  The timestamp must be within ``tolerance``
    seconds of ``now`` either way, which bounds how long a captured request
    can be replayed -- but within that window it verifies every time:
    refusing an id already accepted is the caller's job (:class:`dispatch.receiver.Receiver`
    does it).

    Whatever the header values are, the only exception is SignatureError
    (a bad *secret* is a ValueError: that is the receiver's configuration).
    """
    keys = [_key(s) for s in _secret_list(secrets)]
    found = {name: _header(headers, name) for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)}
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise SignatureError(f"unsigned request: missing header(s) {', '.join(missing)}")
    msg_id, stamp, signatures = found.values()

    if not _TIMESTAMP.fullmatch(stamp.strip()):
        raise SignatureError(f"{HEADER_TIMESTAMP} {stamp[:40]!r} is not an integer number of seconds")
    timestamp = int(stamp.strip())
    age = int(time.time() if now is None else now) - timestamp
    if age > tolerance:
        raise SignatureError(f"{HEADER_TIMESTAMP} is {age} s old, more than the {tolerance} s allowed (a replay?)")
    if -age > tolerance:
        raise SignatureError(f"{HEADER_TIMESTAMP} is {-age} s in the future, more than the {tolerance} s allowed")

    try:
        expected = [_digest(key, msg_id, timestamp, body) for key in keys]
    except UnicodeEncodeError:  # a lone surrogate: no sender could have signed it
        raise SignatureError(f"{HEADER_ID} {msg_id[:40]!r} is not valid text") from None
    for candidate in _v1_signatures(signatures):
        # compare_digest takes the same time wherever the bytes differ.
        if any(hmac.compare_digest(candidate, digest) for digest in expected):
            return Verified(msg_id, timestamp)
    raise SignatureError("no signature matches: wrong secret, or the payload was changed on the way")


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def _secret_list(secrets: str | Sequence[str]) -> list[str]:
    listed = [secrets] if isinstance(secrets, str) else list(secrets)
    if not listed:
        raise ValueError("no signing secret given")
    return listed


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a header; other versions and garbage are skipped."""
    found = []
    for item in header.split():
        version, _, encoded = item.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except ValueError:  # binascii.Error, or non-ASCII text, which b64decode refuses with ValueError
            continue
    return found


def _header(headers: Mapping, name: str) -> str:
    """``headers[name]`` matched case-insensitively, also under WSGI's ``HTTP_NAME`` spelling."""
    for key, value in headers.items():
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if not isinstance(key, str):
            continue
        normalized = key.lower().replace("_", "-")
        if normalized in (name, "http-" + name):
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return ""
