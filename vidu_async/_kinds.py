"""The ``TaskKind`` seam: what the engine needs to know of each Vidu task-creating endpoint.

Creating, journaling, resuming, downloading and the emulator's routing ask a request's kind for
its endpoint path, whether it can carry the SDK's fingerprint in ``payload`` and what media its
task produces; none of them names a request type. A new endpoint is a new request type and one
row of :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from ._models import (
    Extend,
    Image2Dance,
    Img2Video,
    LipSync,
    MultiFrame,
    Reference2Image,
    Reference2Video,
    StartEnd2Video,
    Template,
    TemplateStory,
    Text2Audio,
    Text2Video,
    Timing2Audio,
    Upscale,
)

__all__ = ["DEFAULT_ENDPOINT", "KINDS", "LEGACY_ENDPOINTS", "Output", "TaskKind", "kind_named", "kind_of"]

#: What a task of a kind produces: the media of its ``creations``.
Output = Literal["video", "image", "audio"]

#: The endpoint of a request given without one (job lines and journals written before kinds).
DEFAULT_ENDPOINT: Final = "reference2video"


@attrs.frozen(kw_only=True)
class TaskKind:
    """One task-creating endpoint.

    Attributes:
        endpoint: The path under ``/ent/v2/`` (``reference2video``), also the kind's name in
            journals and job files.
        request_type: The frozen request class of the endpoint.
        payload: Whether the endpoint documents ``payload``: only then can a create whose answer
            was lost be found again by the fingerprint stamped there (without it, such a create is
            ``SubmitOutcomeUnknownError``, never sent again blindly).
        output: The media its task produces.
    """

    endpoint: str
    request_type: type[Any]
    payload: bool
    output: Output

    @property
    def path(self) -> str:
        """The create path."""
        return f"/ent/v2/{self.endpoint}"


#: Every kind, by endpoint.
KINDS: Final[Mapping[str, TaskKind]] = {
    kind.endpoint: kind
    for kind in (
        TaskKind(endpoint="reference2video", request_type=Reference2Video, payload=True, output="video"),
        # payload is documented on all three (vidu-api-endpoints.md §1.4), their output is video (§1.11).
        TaskKind(endpoint="text2video", request_type=Text2Video, payload=True, output="video"),
        TaskKind(endpoint="img2video", request_type=Img2Video, payload=True, output="video"),
        TaskKind(endpoint="start-end2video", request_type=StartEnd2Video, payload=True, output="video"),
        # §21: payload documented on these, each makes a video...
        TaskKind(endpoint="multiframe", request_type=MultiFrame, payload=True, output="video"),
        TaskKind(endpoint="template", request_type=Template, payload=True, output="video"),
        TaskKind(endpoint="template-story", request_type=TemplateStory, payload=True, output="video"),
        TaskKind(endpoint="extend", request_type=Extend, payload=True, output="video"),
        TaskKind(endpoint="upscale-new", request_type=Upscale, payload=True, output="video"),
        # ...but lip-sync's payload is disputed (§22.10): never stamped, so never relied on.
        TaskKind(endpoint="lip-sync", request_type=LipSync, payload=False, output="video"),
        TaskKind(endpoint="image2dance", request_type=Image2Dance, payload=True, output="video"),
        TaskKind(endpoint="reference2image", request_type=Reference2Image, payload=True, output="image"),
        # Not in the audio pages' field lists (§1.4, §22.11).
        TaskKind(endpoint="text2audio", request_type=Text2Audio, payload=False, output="audio"),
        TaskKind(endpoint="timing2audio", request_type=Timing2Audio, payload=False, output="audio"),
    )
}

#: Older names of an endpoint, read in job files and journals (§6, §22.8).
LEGACY_ENDPOINTS: Final[Mapping[str, str]] = {"template2video": "template"}

_BY_TYPE: Final[Mapping[type[Any], TaskKind]] = {kind.request_type: kind for kind in KINDS.values()}


def kind_of(request: object) -> TaskKind:
    """The kind of a request object.

    Raises:
        TypeError: ``request`` is not one of the request types.
    """
    kind = _BY_TYPE.get(type(request))
    if kind is None:
        names = ", ".join(k.request_type.__name__ for k in KINDS.values())
        raise TypeError(f"not a Vidu request ({names}): {type(request).__name__}")
    return kind


def kind_named(endpoint: str) -> TaskKind:
    """The kind of an endpoint name (``"reference2video"``, ``"/ent/v2/reference2video"``...).

    Raises:
        ValueError: no such task-creating endpoint; the message lists them.
    """
    name = endpoint.strip().removeprefix("/ent/v2/").strip("/")
    kind = KINDS.get(LEGACY_ENDPOINTS.get(name, name))
    if kind is None:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of: {', '.join(KINDS)}")
    return kind
