"""Password hashing and session tokens (masking of personal numbers lives in classifiers.masking)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# A hash verified when the username does not exist, so timing does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("villagewatch-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_id(token: str, secret: bytes) -> str:
    """What the database stores for a session token: an HMAC under the dashboard secret, so neither a copy
    of the database nor a token made by a server with another secret opens a session."""
    return hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()


def new_secret() -> bytes:
    """A random dashboard secret, for a start without one configured (sessions then end with the process)."""
    return secrets.token_bytes(32)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
