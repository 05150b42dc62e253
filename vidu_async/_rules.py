"""The documented limits of every task kind: the per-endpoint model tables and the generic limits.

Pure data, no imports from the rest of the package. The SDK's request validation and the
emulator's strict checks both read this table, so the two cannot drift apart.

Where sources contradict each other (vidu-api.md §11) the table takes the permissive side:
a request the service may accept is never refused here. The tables of ``text2video``,
``img2video`` and ``start-end2video`` follow vidu-api-endpoints.md §2-§4 on the same principle
(its §22 lists the contradictions).
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import attrs

__all__ = [
    "ASPECT_RATIO_WORDS",
    "AUDIO_TYPES",
    "AUDIO_TYPE_ALIASES",
    "ENDPOINT_MODELS",
    "ENDPOINT_RULES",
    "KIND_RULES",
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
    "SYNC_RULES",
    "T2V_ASPECT_RATIOS",
    "WM_POSITIONS",
    "EndpointRule",
    "FieldRule",
    "FieldType",
    "KindRule",
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
        min_images: Fewest images (``reference2image``: ``viduq1`` needs one).
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
    min_images: int = 0

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


# --- the kinds described field by field (vidu-api-endpoints.md §5-§18) -----------------------------

#: What a field holds. ``image``/``video``/``audio``: one media item (URL, data URI, file or bytes);
#: ``images``: a list of images; ``objects``: a list of objects, each described by ``fields``.
FieldType: TypeAlias = Literal[
    "str", "bool", "int", "number", "image", "video", "audio", "images", "objects", "strs"
]


@attrs.frozen(kw_only=True)
class FieldRule:
    """One documented request field of an endpoint described field by field.

    Attributes:
        name: The JSON name (a Python keyword, ``from``, is the attribute ``from_``).
        type: What it holds.
        required: Whether the endpoint needs it.
        choices: A closed set of values (both the SDK and the emulator refuse others).
        known: An open set: the values the docs list, which the emulator takes; the SDK passes any
            value, so a name added to the service works on day one (templates, stories).
        lowest: Smallest number, inclusive.
        highest: Largest number, inclusive.
        min_chars: Shortest text (``weighted``: CJK characters count two).
        max_chars: Longest text.
        weighted: Whether CJK characters count two towards the text limits (lip-sync's ``text``).
        min_items: Fewest list items.
        max_items: Most list items.
        max_bytes: Largest media item sent inline.
        min_side: Smallest image side, pixels.
        max_side: Largest image side, pixels (``None``: no limit).
        max_aspect: Widest image aspect (long side / short side).
        url: Whether a text field must be an ``http(s)`` URL.
        fields: The fields of each object of an ``objects`` list.
        object_name: The Python class of those objects, for messages (``KeyFrame``).
    """

    name: str
    type: FieldType
    required: bool = False
    choices: tuple[str, ...] = ()
    known: tuple[str, ...] = ()
    lowest: float | None = None
    highest: float | None = None
    min_chars: int | None = None
    max_chars: int | None = None
    weighted: bool = False
    min_items: int = 0
    max_items: int | None = None
    max_bytes: int = MAX_MEDIA_BYTES
    min_side: int = MIN_IMAGE_SIDE
    max_side: int | None = None
    max_aspect: float = MAX_IMAGE_ASPECT
    url: bool = False
    fields: tuple[FieldRule, ...] = ()
    object_name: str = ""

    @property
    def attribute(self) -> str:
        """The Python attribute holding the field (``from`` → ``from_``)."""
        return f"{self.name}_" if self.name in _KEYWORDS else self.name

    @property
    def is_media(self) -> bool:
        """Whether the field holds one media item or a list of images."""
        return self.type in ("image", "video", "audio", "images")


_KEYWORDS: Final = frozenset({"from"})


@attrs.frozen(kw_only=True)
class KindRule:
    """The documented request of an endpoint described field by field.

    Attributes:
        endpoint: The path under ``/ent/v2/``.
        fields: Exactly the documented fields, in the docs' order.
        models: The model table (``None``: the endpoint has no ``model`` field).
        one_of: Groups of fields of which at least one must be given.
        source: The section of vidu-api-endpoints.md the fields come from.
    """

    endpoint: str
    fields: tuple[FieldRule, ...]
    models: dict[str, ModelRule] | None = None
    one_of: tuple[tuple[str, ...], ...] = ()
    source: str = ""

    def field(self, name: str) -> FieldRule | None:
        """The field named ``name`` (its JSON name), or ``None``."""
        return next((f for f in self.fields if f.name == name), None)


_PAYLOAD: Final = FieldRule(name="payload", type="str", max_chars=MAX_PAYLOAD_CHARS)
_CALLBACK: Final = FieldRule(name="callback_url", type="str", url=True)
_SEED: Final = FieldRule(name="seed", type="int", lowest=0, highest=MAX_SEED)
_WM_INT: Final = (
    FieldRule(name="watermark", type="bool"),
    FieldRule(name="wm_position", type="int", lowest=1, highest=4),
    FieldRule(name="wm_url", type="str", url=True),
    FieldRule(name="meta_data", type="str"),
)
#: ``wm_position`` of multiframe is a word (§1.6, §22.7).
MULTIFRAME_WM_POSITIONS: Final = ("top_left", "top_right", "bottom_right", "bottom_left")
#: ``aspect_ratio`` of ``template``: the .com page's list (the .cn page's is a subset), §6.1.
TEMPLATE_ASPECT_RATIOS: Final = ("16:9", "9:16", "1:1")
TEMPLATE_AREAS: Final = (
    "auto", "denmark", "uk", "africa", "china", "mexico", "switzerland", "russia", "italy", "korea",
    "thailand", "india", "japan",
)  # fmt: skip
TEMPLATE_BEASTS: Final = ("auto", "bear", "tiger", "elk", "snake", "lion", "wolf")
#: Template names the docs and the official MCP server show (an open list: the SDK takes any name).
TEMPLATE_NAMES: Final = (
    "hugging", "kissing", "subject_3", "pubg_winner_hit", "exotic_princess", "beast_companion",
    "turn_into_zombie", "head_to_balloon", "wednesdays_vibe", "covered_liquid_metal",
)  # fmt: skip
#: Stories of the new template-story page (§7.1; the old page had the first two).
STORIES: Final = ("love_story", "workday_feels", "monkey_king", "pigsy", "monk_tang", "one_shot")
UPSCALE_RESOLUTIONS: Final = ("1080p", "2K", "4K", "8K")
TTS_EMOTIONS: Final = ("happy", "sad", "angry", "fearful", "disgusted", "surprised", "calm")
PROMPT_TYPES: Final = ("template", "img2video")

_Q2_PAIR: Final = ("viduq2-pro", "viduq2-turbo")
#: ``multiframe`` and ``extend`` take the q2 pair only (§5.2, §9.1): 540p, 720p (default), 1080p.
Q2_PAIR_RULES: Final[dict[str, ModelRule]] = {
    name: ModelRule(name=name, resolutions=("540p", "720p", "1080p")) for name in _Q2_PAIR
}
_R2I_Q2_ASPECTS: Final = ("16:9", "9:16", "1:1", "3:4", "4:3", "21:9", "2:3", "3:2", "auto")
#: ``reference2image`` (§8.2); ``auto`` also for q1 (the docs leave it open: the permissive side).
R2I_MODEL_RULES: Final[dict[str, ModelRule]] = {
    rule.name: rule
    for rule in (
        ModelRule(
            name="viduq2",
            resolutions=("1080p", "2K", "4K"),
            default_resolution="1080p",
            aspect_ratios=_R2I_Q2_ASPECTS,
        ),
        ModelRule(
            name="viduq1",
            resolutions=("1080p",),
            default_resolution="1080p",
            aspect_ratios=("16:9", "9:16", "1:1", "3:4", "4:3", "auto"),
            min_images=1,
        ),
    )
}
#: ``text2audio`` and ``timing2audio`` take one model (§14.1, §15.1).
AUDIO_MODEL_RULES: Final[dict[str, ModelRule]] = {"audio1.0": ModelRule(name="audio1.0", resolutions=())}
#: Longest audio prompt (§14.1, §15.1).
MAX_AUDIO_PROMPT_CHARS: Final = 1500
#: Prompt limit of the endpoints whose pages say 2000 (template, extend, reference2image: §22.1).
MAX_PROMPT_2000: Final = 2000

#: The kinds described field by field, by endpoint: exactly their documented fields (§24: never
#: a field the endpoint does not document; where sources differ, the permissive limit).
KIND_RULES: Final[dict[str, KindRule]] = {
    rule.endpoint: rule
    for rule in (
        KindRule(
            endpoint="multiframe",
            source="§5",
            models=Q2_PAIR_RULES,
            fields=(
                FieldRule(name="model", type="str", required=True),
                FieldRule(name="start_image", type="image", required=True),
                FieldRule(
                    name="image_settings",
                    type="objects",
                    required=True,
                    min_items=2,
                    max_items=9,
                    object_name="KeyFrame",
                    fields=(
                        FieldRule(name="key_image", type="image", required=True),
                        # No documented limit (Comfy checks 2000, a client choice): the prompt limit.
                        FieldRule(name="prompt", type="str", max_chars=MAX_PROMPT_CHARS),
                        FieldRule(name="duration", type="int", lowest=2, highest=7),
                    ),
                ),
                FieldRule(name="resolution", type="str"),
                _PAYLOAD,
                _CALLBACK,
                FieldRule(name="watermark", type="bool"),
                FieldRule(name="wm_url", type="str", url=True),
                FieldRule(name="wm_position", type="str", choices=MULTIFRAME_WM_POSITIONS),
                FieldRule(name="meta_data", type="str"),
            ),
        ),
        KindRule(
            endpoint="template",
            source="§6",
            fields=(
                FieldRule(name="template", type="str", required=True, known=TEMPLATE_NAMES),
                FieldRule(name="images", type="images", required=True, min_items=1),
                FieldRule(name="prompt", type="str", max_chars=MAX_PROMPT_2000),
                _SEED,
                FieldRule(name="aspect_ratio", type="str", choices=TEMPLATE_ASPECT_RATIOS),
                FieldRule(name="area", type="str", choices=TEMPLATE_AREAS),
                FieldRule(name="beast", type="str", choices=TEMPLATE_BEASTS),
                FieldRule(name="bgm", type="bool"),
                _PAYLOAD,
                _CALLBACK,
                *_WM_INT,
            ),
        ),
        KindRule(
            endpoint="template-story",
            source="§7",
            fields=(
                FieldRule(name="story", type="str", required=True, known=STORIES),
                # The count per story is not documented (one real call: 3-10 for one_shot, §22.9).
                FieldRule(name="images", type="images", required=True, min_items=1),
                _PAYLOAD,
                _CALLBACK,
            ),
        ),
        KindRule(
            endpoint="reference2image",
            source="§8",
            models=R2I_MODEL_RULES,
            fields=(
                FieldRule(name="model", type="str", required=True),
                FieldRule(name="images", type="images", max_items=7),
                FieldRule(name="prompt", type="str", required=True, max_chars=MAX_PROMPT_2000),
                _SEED,
                FieldRule(name="aspect_ratio", type="str"),
                FieldRule(name="resolution", type="str"),
                _PAYLOAD,
                _CALLBACK,
            ),
        ),
        KindRule(
            endpoint="extend",
            source="§9",
            models=Q2_PAIR_RULES,
            one_of=(("video_creation_id", "video_url"),),
            fields=(
                FieldRule(name="model", type="str", required=True),
                FieldRule(name="video_creation_id", type="str"),
                FieldRule(name="video_url", type="video"),
                FieldRule(name="images", type="images", max_items=1),
                FieldRule(name="prompt", type="str", max_chars=MAX_PROMPT_2000),
                FieldRule(name="duration", type="int", lowest=1, highest=7),
                FieldRule(name="resolution", type="str"),
                _PAYLOAD,
                _CALLBACK,
            ),
        ),
        KindRule(
            endpoint="upscale-new",
            source="§10",
            one_of=(("video_url", "video_creation_id"),),
            fields=(
                FieldRule(name="video_url", type="video"),
                FieldRule(name="video_creation_id", type="str"),
                FieldRule(name="upscale_resolution", type="str", choices=UPSCALE_RESOLUTIONS),
                _PAYLOAD,
                _CALLBACK,
            ),
        ),
        KindRule(
            endpoint="lip-sync",
            source="§11",
            one_of=(("audio_url", "text"),),
            fields=(
                FieldRule(name="video_url", type="video", required=True),
                FieldRule(name="audio_url", type="audio"),
                FieldRule(name="text", type="str", min_chars=4, max_chars=2000, weighted=True),
                # 0.5-2 (copies, clients) over 0.5-1.5 (a 2025 client): §22.10.
                FieldRule(name="speed", type="number", lowest=0.5, highest=2.0),
                FieldRule(name="voice_id", type="str"),
                FieldRule(name="volume", type="int", lowest=0, highest=10),
                FieldRule(name="ref_photo_url", type="image"),
                _CALLBACK,
                # Listed by resellers, undeclared per one adapter (§22.10): sent only when given.
                _PAYLOAD,
            ),
        ),
        KindRule(
            endpoint="image2dance",
            source="§12",
            fields=(
                FieldRule(
                    name="image_url",
                    type="image",
                    required=True,
                    max_bytes=5 * 1024 * 1024,
                    min_side=200,
                    max_side=4096,
                    max_aspect=3.0,
                ),
                FieldRule(name="video_url", type="video", required=True),
                _PAYLOAD,
                _CALLBACK,
            ),
        ),
        KindRule(
            endpoint="text2audio",
            source="§14",
            models=AUDIO_MODEL_RULES,
            fields=(
                FieldRule(name="model", type="str", required=True),
                FieldRule(name="prompt", type="str", required=True, max_chars=MAX_AUDIO_PROMPT_CHARS),
                FieldRule(name="duration", type="number", lowest=2, highest=10),
                _SEED,
                _CALLBACK,
                # Not in the official list, sent by one client (§22.11): sent only when given.
                _PAYLOAD,
            ),
        ),
        KindRule(
            endpoint="timing2audio",
            source="§15",
            models=AUDIO_MODEL_RULES,
            fields=(
                FieldRule(name="model", type="str", required=True),
                FieldRule(name="duration", type="number", lowest=2, highest=10),
                FieldRule(
                    name="timing_prompts",
                    type="objects",
                    required=True,
                    min_items=1,
                    object_name="TimingPrompt",
                    fields=(
                        FieldRule(name="from", type="number", required=True, lowest=0),
                        FieldRule(name="to", type="number", required=True, lowest=0),
                        FieldRule(name="prompt", type="str", required=True, max_chars=MAX_AUDIO_PROMPT_CHARS),
                    ),
                ),
                _SEED,
                _CALLBACK,
                _PAYLOAD,
            ),
        ),
    )
}

#: The synchronous endpoints, described the same way (§16-§18).
SYNC_RULES: Final[dict[str, KindRule]] = {
    rule.endpoint: rule
    for rule in (
        KindRule(
            endpoint="audio-tts",
            source="§16",
            fields=(
                FieldRule(name="text", type="str", required=True, min_chars=1, max_chars=9_999),
                FieldRule(name="voice_setting_voice_id", type="str", required=True),
                FieldRule(name="voice_setting_speed", type="number", lowest=0.5, highest=2.0),
                FieldRule(name="voice_setting_volume", type="int", lowest=0, highest=10),
                FieldRule(name="voice_setting_pitch", type="int", lowest=-12, highest=12),
                FieldRule(name="voice_setting_emotion", type="str", choices=TTS_EMOTIONS),
                FieldRule(name="pronunciation_dict_tone", type="strs"),
                _PAYLOAD,
            ),
        ),
        KindRule(
            endpoint="audio-clone",
            source="§17",
            fields=(
                FieldRule(name="audio_url", type="audio", required=True),
                # 8-256 by the page's rule, whose own example has 6 (§22.20): the permissive side.
                FieldRule(name="voice_id", type="str", required=True, min_chars=1, max_chars=256),
                FieldRule(name="prompt_audio_url", type="audio"),
                FieldRule(name="prompt_text", type="str"),
                FieldRule(name="text", type="str", required=True, min_chars=1, max_chars=1000),
                _PAYLOAD,
            ),
        ),
        KindRule(
            endpoint="img2video-prompt-recommendation",
            source="§18",
            fields=(
                FieldRule(name="images", type="images", required=True, min_items=1, max_items=1),
                FieldRule(name="type", type="strs", required=True, choices=PROMPT_TYPES, min_items=1),
                FieldRule(name="resolution", type="str", choices=("360p", "720p")),
                FieldRule(name="count", type="int", lowest=1, highest=10),
            ),
        ),
    )
}

#: Every endpoint's model table (the emulator answers ``ModelUnavailable`` outside it); the
#: endpoints without a ``model`` field have none.
ENDPOINT_MODELS: Final[dict[str, dict[str, ModelRule]]] = {
    "reference2video": MODEL_RULES,
    **{name: rule.models for name, rule in ENDPOINT_RULES.items()},
    **{name: rule.models for name, rule in KIND_RULES.items() if rule.models is not None},
}
