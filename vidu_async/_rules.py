"""The documented limits of every task kind: the per-endpoint model tables and the generic limits.

Pure data, no imports from the rest of the package. The SDK's request validation and the
emulator's strict checks both read this table, so the two cannot drift apart.

Where sources contradict each other (vidu-api.md §11) the table takes the permissive side:
a request the service may accept is never refused here. The tables of ``text2video``,
``img2video`` and ``start-end2video`` follow vidu-api-endpoints.md §2-§4 on the same principle
(its §22 lists the contradictions).
"""

from __future__ import annotations

from typing import Final

import attrs

__all__ = [
    "ASPECT_RATIO_WORDS",
    "AUDIO_TYPES",
    "AUDIO_TYPE_ALIASES",
    "ENDPOINT_MODELS",
    "ENDPOINT_RULES",
    "MAX_BODY_BYTES",
    "MAX_IMAGES_PER_SUBJECT",
    "MAX_MEDIA_BYTES",
    "MAX_PAYLOAD_CHARS",
    "MAX_PROMPT_CHARS",
    "MAX_SEED",
    "MAX_SUBJECTS",
    "MAX_SUBJECT_IMAGES_TOTAL",
    "MIN_IMAGE_SIDE",
    "MODEL_RULES",
    "MOVEMENT_AMPLITUDES",
    "RESOLUTIONS",
    "STYLES",
    "T2V_ASPECT_RATIOS",
    "WM_POSITIONS",
    "EndpointRule",
    "ModelRule",
]

#: Longest prompt, in characters. 5000 in the current docs (2000 and 1500 in older ones: lenient).
MAX_PROMPT_CHARS: Final = 5000
#: Longest ``payload``, in characters.
MAX_PAYLOAD_CHARS: Final = 1_048_576
#: Largest JSON body (20 MB, read as MiB: the permissive reading).
MAX_BODY_BYTES: Final = 20 * 1024 * 1024
#: Largest decoded media item (images and videos sent inline as base64).
MAX_MEDIA_BYTES: Final = 20 * 1024 * 1024
#: Smallest image side, in pixels.
MIN_IMAGE_SIDE: Final = 128
#: Widest image aspect (long side / short side): between 1:4 and 4:1.
MAX_IMAGE_ASPECT: Final = 4.0
#: Subjects per request.
MAX_SUBJECTS: Final = 7
#: Images (and videos: they share the slots) per subject.
MAX_IMAGES_PER_SUBJECT: Final = 3
#: Images across all subjects of one request.
MAX_SUBJECT_IMAGES_TOTAL: Final = 7
#: Seeds that clients are known to send (0 means random).
MAX_SEED: Final = 2_147_483_647

RESOLUTIONS: Final = ("360p", "540p", "720p", "1080p")
#: The named aspect ratios; any ``W:H`` of positive integers is also accepted (q2/q3 take any ratio).
ASPECT_RATIO_WORDS: Final = ("auto",)
AUDIO_TYPES: Final = ("all", "speech_only", "sound_effect_only")
#: Spellings accepted on input and the documented name sent instead.
AUDIO_TYPE_ALIASES: Final = {"sound-effect_only": "sound_effect_only"}
MOVEMENT_AMPLITUDES: Final = ("auto", "small", "medium", "large")
WM_POSITIONS: Final = (1, 2, 3, 4)
#: ``style`` of ``text2video`` (vidu-api-endpoints.md §2.1).
STYLES: Final = ("general", "anime")
#: ``aspect_ratio`` of ``text2video``: a closed list there (§2.1), unlike reference2video's.
T2V_ASPECT_RATIOS: Final = ("16:9", "9:16", "3:4", "4:3", "1:1")


@attrs.frozen(kw_only=True)
class ModelRule:
    """What one model accepts on ``reference2video`` (vidu-api.md §2.4).

    Attributes:
        name: The model id sent as ``model``.
        subject_call: Whether ``subjects`` may be used.
        non_subject_call: Whether ``images`` may be used.
        min_duration: Shortest duration, seconds.
        max_duration: Longest duration, seconds.
        durations: When set, the only durations allowed (overrides the range).
        default_duration: Duration when none is sent.
        resolutions: Allowed resolutions.
        default_resolution: Resolution when none is sent.
        resolutions_by_duration: Narrower resolution sets for some durations.
        audio_default: Whether audio is generated when ``audio`` is not sent.
        max_images: Most images in a non-subject call.
        videos: Whether reference videos are accepted (``images`` calls and subjects).
        max_videos: Most videos in a non-subject call.
        max_images_with_videos: Most images in a non-subject call that also sends videos.
        max_image_subjects: Most image/text subjects in a subject call.
        max_video_subjects: Most video subjects in a subject call.
        aspect_ratios: The aspect ratios the model takes, where narrower than the endpoint's
            (``text2video``: the old models lack ``3:4`` and ``4:3``).
    """

    name: str
    subject_call: bool = True
    non_subject_call: bool = True
    min_duration: int = 1
    max_duration: int = 10
    durations: tuple[int, ...] | None = None
    default_duration: int = 5
    resolutions: tuple[str, ...] = ("540p", "720p", "1080p")
    default_resolution: str = "720p"
    resolutions_by_duration: tuple[tuple[int, tuple[str, ...]], ...] = ()
    audio_default: bool = False
    max_images: int = 7
    videos: bool = False
    max_videos: int = 0
    max_images_with_videos: int = 7
    max_image_subjects: int = MAX_SUBJECTS
    max_video_subjects: int = 0
    aspect_ratios: tuple[str, ...] | None = None

    def allowed_durations(self) -> tuple[int, ...]:
        """Every duration the model accepts."""
        if self.durations is not None:
            return self.durations
        return tuple(range(self.min_duration, self.max_duration + 1))

    def resolutions_for(self, duration: int | None) -> tuple[str, ...]:
        """The resolutions allowed at ``duration`` (the model default when ``None``)."""
        seconds = self.default_duration if duration is None else duration
        for when, allowed in self.resolutions_by_duration:
            if when == seconds:
                return allowed
        return self.resolutions


_Q3_RESOLUTIONS: Final = ("540p", "720p", "1080p")

#: The model table. Sources and contradictions: vidu-api.md §2.4 and §11.
MODEL_RULES: Final[dict[str, ModelRule]] = {
    rule.name: rule
    for rule in (
        ModelRule(
            name="viduq3-mix",
            subject_call=False,
            min_duration=1,
            max_duration=16,
            resolutions=("720p", "1080p"),
            audio_default=True,
        ),
        ModelRule(
            name="viduq3", min_duration=3, max_duration=16, resolutions=_Q3_RESOLUTIONS, audio_default=True
        ),
        ModelRule(
            name="viduq3-turbo",
            min_duration=3,
            max_duration=16,
            resolutions=_Q3_RESOLUTIONS,
            audio_default=True,
        ),
        # Duration "0-10" (R2V-VER) vs "1-10" (AMY): the permissive side is 0-10.
        ModelRule(
            name="viduq2-pro",
            min_duration=0,
            max_duration=10,
            videos=True,
            max_videos=2,
            max_images_with_videos=4,
            max_image_subjects=4,
            max_video_subjects=2,
        ),
        ModelRule(name="viduq2", min_duration=1, max_duration=10),
        ModelRule(
            name="viduq1",
            durations=(5,),
            default_duration=5,
            resolutions=("1080p",),
            default_resolution="1080p",
        ),
        # Image count 1-3 (2025 docs) vs 1-7 (q3-era docs): the permissive side is 7.
        ModelRule(
            name="vidu2.0",
            durations=(4,),
            default_duration=4,
            resolutions=("360p", "720p"),
            default_resolution="360p",
        ),
        ModelRule(
            name="vidu1.5",
            subject_call=False,
            durations=(4, 8),
            default_duration=4,
            resolutions=("360p", "720p", "1080p"),
            default_resolution="360p",
            resolutions_by_duration=((8, ("720p",)),),
            max_images=3,
        ),
    )
}


_OLD_ASPECTS: Final = ("16:9", "9:16", "1:1")
_VIDU2_RESOLUTIONS: Final = ("360p", "720p", "1080p")

#: ``text2video`` (vidu-api-endpoints.md §2.2). q3 durations from 1 (pages) not 3 (one note): §22.2.
T2V_MODEL_RULES: Final[dict[str, ModelRule]] = {
    rule.name: rule
    for rule in (
        ModelRule(name="viduq3-pro", max_duration=16, resolutions=_Q3_RESOLUTIONS, audio_default=True),
        ModelRule(name="viduq3-turbo", max_duration=16, resolutions=_Q3_RESOLUTIONS, audio_default=True),
        ModelRule(name="viduq2", max_duration=10, resolutions=_Q3_RESOLUTIONS),
        ModelRule(
            name="viduq1",
            durations=(5,),
            resolutions=("1080p",),
            default_resolution="1080p",
            aspect_ratios=_OLD_ASPECTS,
        ),
        ModelRule(
            name="vidu1.5",
            durations=(4, 8),
            default_duration=4,
            resolutions=_VIDU2_RESOLUTIONS,
            default_resolution="360p",
            resolutions_by_duration=((8, ("720p",)),),
            aspect_ratios=_OLD_ASPECTS,
        ),
    )
}


def _vidu2(name: str) -> ModelRule:
    """``vidu2.0`` and ``vidu1.5`` on the image endpoints: 4 or 8 s, 8 s at 720p only."""
    return ModelRule(
        name=name,
        durations=(4, 8),
        default_duration=4,
        resolutions=_VIDU2_RESOLUTIONS,
        default_resolution="360p",
        resolutions_by_duration=((8, ("720p",)),),
    )


#: ``img2video`` (vidu-api-endpoints.md §3.2). Permissive where sources differ (§22.3-§22.5):
#: q2-pro/q2-turbo take 540p too, ``viduq3-pro-fast`` and ``viduq2`` are listed, q3-pro takes ``2K``.
I2V_MODEL_RULES: Final[dict[str, ModelRule]] = {
    rule.name: rule
    for rule in (
        ModelRule(
            name="viduq3-pro",
            max_duration=16,
            resolutions=(*_Q3_RESOLUTIONS, "2K"),
            audio_default=True,
        ),
        ModelRule(name="viduq3-turbo", max_duration=16, resolutions=_Q3_RESOLUTIONS, audio_default=True),
        ModelRule(name="viduq3-pro-fast", max_duration=16, resolutions=("720p", "1080p"), audio_default=True),
        ModelRule(name="viduq2-pro-fast", max_duration=10, resolutions=("720p", "1080p")),
        ModelRule(name="viduq2-pro", max_duration=10, resolutions=_Q3_RESOLUTIONS),
        ModelRule(name="viduq2-turbo", max_duration=10, resolutions=_Q3_RESOLUTIONS),
        ModelRule(name="viduq2", max_duration=10, resolutions=_Q3_RESOLUTIONS),
        ModelRule(name="viduq1", durations=(5,), resolutions=("1080p",), default_resolution="1080p"),
        ModelRule(name="viduq1-classic", durations=(5,), resolutions=("1080p",), default_resolution="1080p"),
        _vidu2("vidu2.0"),
        _vidu2("vidu1.5"),
    )
}

#: ``start-end2video`` (vidu-api-endpoints.md §4.2); ``viduq2`` (one source, §22.4) as the q2 family.
SE2V_MODEL_RULES: Final[dict[str, ModelRule]] = {
    rule.name: rule
    for rule in (
        ModelRule(name="viduq3-pro", max_duration=16, resolutions=_Q3_RESOLUTIONS, audio_default=True),
        ModelRule(name="viduq3-turbo", max_duration=16, resolutions=_Q3_RESOLUTIONS, audio_default=True),
        ModelRule(name="viduq2-pro-fast", max_duration=8, resolutions=("720p", "1080p")),
        ModelRule(name="viduq2-pro", max_duration=8, resolutions=_Q3_RESOLUTIONS),
        ModelRule(name="viduq2-turbo", max_duration=8, resolutions=_Q3_RESOLUTIONS),
        ModelRule(name="viduq2", max_duration=10, resolutions=_Q3_RESOLUTIONS),
        ModelRule(name="viduq1", durations=(5,), resolutions=("1080p",), default_resolution="1080p"),
        ModelRule(name="viduq1-classic", durations=(5,), resolutions=("1080p",), default_resolution="1080p"),
        _vidu2("vidu2.0"),
        _vidu2("vidu1.5"),
    )
}


@attrs.frozen(kw_only=True)
class EndpointRule:
    """The endpoint-wide rules of a kind without subjects (vidu-api-endpoints.md §2-§4).

    Attributes:
        endpoint: The path under ``/ent/v2/``.
        models: The model table.
        images: How many images ``images`` holds, exactly (0: the endpoint has no ``images``).
        prompt_required: Whether ``prompt`` must be given.
        q3_only_off_peak_with_audio: Whether ``off_peak`` with ``audio`` true is for q3 models only
            (img2video, §3.1).
    """

    endpoint: str
    models: dict[str, ModelRule]
    images: int = 0
    prompt_required: bool = False
    q3_only_off_peak_with_audio: bool = False


#: The endpoint-wide rules of each kind without subjects, by endpoint.
ENDPOINT_RULES: Final[dict[str, EndpointRule]] = {
    rule.endpoint: rule
    for rule in (
        EndpointRule(endpoint="text2video", models=T2V_MODEL_RULES, prompt_required=True),
        EndpointRule(
            endpoint="img2video", models=I2V_MODEL_RULES, images=1, q3_only_off_peak_with_audio=True
        ),
        EndpointRule(endpoint="start-end2video", models=SE2V_MODEL_RULES, images=2),
    )
}

#: Every endpoint's model table (the emulator answers ``ModelUnavailable`` outside it).
ENDPOINT_MODELS: Final[dict[str, dict[str, ModelRule]]] = {
    "reference2video": MODEL_RULES,
    **{name: rule.models for name, rule in ENDPOINT_RULES.items()},
}
