"""Vidu's callback signature (vidu-api.md §7): the signing string and its HMAC-SHA256.

Pure and shared: the emulator signs with it and ``callbacks.verify_signature`` checks with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "ACCESS_KEY",
    "ALGORITHM",
    "http_date",
    "sign",
    "signed_headers",
    "signing_string",
]

ACCESS_KEY: Final = "vidu"
ALGORITHM: Final = "hmac-sha256"


def signing_string(method: str, url: str, date: str, headers: Sequence[tuple[str, str]]) -> str:
    """Build the string Vidu signs.

    Args:
        method: The HTTP method (upper-cased here).
        url: The registered callback URL: its path (``/`` when empty) and raw query are signed.
        date: The ``Date`` header value.
        headers: The signed headers in ``X-HMAC-SIGNED-HEADERS`` order, as (name, value).
    """
    parts = urlsplit(url)
    lines = [method.upper(), parts.path or "/", parts.query, ACCESS_KEY, date]
    text = "\n".join(lines) + "\n"
    return text + "".join(f"{name}:{value}\n" for name, value in headers)


def sign(key: str, text: str) -> str:
    """base64(HMAC-SHA256(key, text))."""
    digest = hmac.new(key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def http_date(moment: datetime | None = None) -> str:
    """An RFC 1123 date in GMT (``Tue, 06 May 2025 12:09:42 GMT``)."""
    return format_datetime((moment or datetime.now(UTC)).astimezone(UTC), usegmt=True)


def signed_headers(
    *, key: str, url: str, nonce: str, date: str, method: str = "POST", extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every header Vidu sends with a callback, signature included."""
    values = {"Date": date, "x-request-nonce": nonce, **(extra or {})}
    names = list(values)
    text = signing_string(method, url, date, [(n, values[n]) for n in names])
    return {
        **values,
        "X-HMAC-SIGNED-HEADERS": ";".join(names),
        "X-HMAC-ALGORITHM": ALGORITHM,
        "X-HMAC-ACCESS-KEY": ACCESS_KEY,
        "X-HMAC-SIGNATURE": sign(key, text),
    }
