"""Client configuration that is not a request: base URLs and timeouts.

Policies are frozen attrs classes with module defaults; change one with ``attrs.evolve``.
Durations are float seconds.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

__all__ = ["CHINA_BASE_URL", "DEFAULT_TIMEOUTS", "GLOBAL_BASE_URL", "Timeouts"]

#: The global service (console: platform.vidu.com).
GLOBAL_BASE_URL: Final = "https://api.vidu.com"
#: The China service (console: platform.vidu.cn); same paths.
CHINA_BASE_URL: Final = "https://api.vidu.cn"


def _positive_or_none(
    instance: object, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(
            f"Timeouts.{attribute.name} must be a positive number of seconds or None, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Timeouts:
    """How long each part of a call may take, in seconds (``None``: no limit).

    Attributes:
        connect: Opening the connection (TCP and TLS). A call that times out here was never sent,
            so it is safe to retry, create included.
        read: The longest silence while reading a response.
        request: A whole ordinary call (query, list, cancel, credits).
        create: A whole create call. Generous by default: bodies carry up to 20 MB of base64 media.
        download: A whole download (``None``: bounded only by ``read``).
    """

    connect: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    read: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    request: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    create: float | None = attrs.field(default=300.0, validator=_positive_or_none)
    download: float | None = attrs.field(default=None, validator=_positive_or_none)


#: The timeouts a client uses unless told otherwise.
DEFAULT_TIMEOUTS: Final = Timeouts()
