"""Signatures, as Pusher makes them (HMAC-SHA256, lowercase hex, keyed by the app secret).

* private channel: ``connection_id + ":" + channel``
* presence channel: ``connection_id + ":" + channel + ":" + channel_data``
* user sign-in: ``connection_id + "::user::" + user_data``

``auth`` is ``app_key + ":" + hex``. Verification compares in constant time against the exact
string received: ``channel_data``/``user_data`` are never re-serialised before checking.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, text: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``text``."""
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def channel_string(connection_id: str, channel: str, channel_data: str | None = None) -> str:
    """What is signed to authorise a connection on a channel."""
    base = f"{connection_id}:{channel}"
    return base if channel_data is None else f"{base}:{channel_data}"


def user_string(connection_id: str, user_data: str) -> str:
    """What is signed to sign a user in on a connection."""
    return f"{connection_id}::user::{user_data}"


def make_auth(key: str, secret: str, text: str) -> str:
    """The ``auth`` value a server hands out: ``key:signature``."""
    return f"{key}:{sign(secret, text)}"


def verify_auth(key: str, secret: str, text: str, auth: object) -> bool:
    """Whether ``auth`` is ``key:signature`` of ``text``; constant-time in the signature."""
    if not isinstance(auth, str) or not secret:
        return False
    given_key, sep, signature = auth.partition(":")
    expected = sign(secret, text)
    key_ok = hmac.compare_digest(given_key.encode(), key.encode())
    return bool(sep) and hmac.compare_digest(signature.encode(), expected.encode()) and key_ok
