"""``Secret``: the API key as a value that never shows itself.

A leaf (it imports nothing of the package), so that every layer that holds the key (the
transport's Authorization header, the callback receiver's HMAC) holds it the same way.
"""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """A string that never shows itself in a repr, a str, ``vars()``, a log line or a pickle."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one header or signature that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not picklable")
