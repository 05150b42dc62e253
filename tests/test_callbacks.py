"""Callbacks (vidu-api.md §7): signature verification, replay and skew policy, parsing, the aiohttp receiver."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import pickle
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import load_fixture
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from vidu_async import _signing
from vidu_async._models import Task, TaskState
from vidu_async.callbacks import (
    RECEIVER_KEY,
    CallbackReceiver,
    NonceCache,
    make_callback_app,
    parse_callback,
    verify_request,
    verify_signature,
)
from vidu_async.emulator import CallbackConfig, Emulator, EmulatorConfig
from vidu_async.exceptions import CallbackVerificationError, ResponseValidationError

VECTOR: dict[str, Any] = load_fixture("callback-signed.json")
URL: str = VECTOR["url"]
KEY: str = VECTOR["api_key"]
HEADERS: dict[str, str] = VECTOR["headers"]
DATE: str = HEADERS["Date"]
NONCE: str = HEADERS["x-request-nonce"]
SIGNATURE: str = HEADERS["X-HMAC-SIGNATURE"]
NOW = parsedate_to_datetime(DATE)
NOW_TS = NOW.timestamp()
BODY: dict[str, Any] = VECTOR["body"]
REQUIRED = (
    "Date",
    "x-request-nonce",
    "X-HMAC-SIGNED-HEADERS",
    "X-HMAC-ALGORITHM",
    "X-HMAC-ACCESS-KEY",
    "X-HMAC-SIGNATURE",
)


def verify(headers: Any = None, *, url: str = URL, now: Any = NOW, key: str = KEY, **kwargs: Any) -> None:
    verify_signature(
        method=kwargs.pop("method", "POST"),
        url=url,
        headers=HEADERS if headers is None else headers,
        api_key=key,
        now=now,
        **kwargs,
    )


def failed_check(headers: Any = None, **kwargs: Any) -> str:
    with pytest.raises(CallbackVerificationError) as info:
        verify(headers, **kwargs)
    return info.value.check


def signed(
    *,
    key: str = KEY,
    url: str = URL,
    nonce: str = NONCE,
    date: str = DATE,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    return _signing.signed_headers(key=key, url=url, nonce=nonce, date=date, extra=extra)


def mutate(text: str, index: int) -> str:
    """``text`` with the character at ``index`` changed to another of the same kind."""
    char = text[index]
    if char.isdigit():
        new = str((int(char) + 1) % 10)
    elif char.isalpha():
        new = "b" if char.lower() == "a" else "a"
        new = new.upper() if char.isupper() else new
    else:
        new = "y" if char == "x" else "x"
    return text[:index] + new + text[index + 1 :]


def without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


class TestDocumentedVector:
    """The worked vector of vidu-api.md §7 verifies, however the moment and the headers are given."""

    def test_signing_string_is_the_documented_one(self) -> None:
        """``_signing`` rebuilds the documented signing string and signature."""
        text = _signing.signing_string("POST", URL, DATE, [("Date", DATE), ("x-request-nonce", NONCE)])
        assert text == VECTOR["signing_string"]
        assert _signing.sign(KEY, text) == SIGNATURE

    @pytest.mark.parametrize("now", [NOW, NOW_TS, NOW.replace(tzinfo=None), int(NOW_TS)])
    def test_vector_verifies_at_its_date(self, now: Any) -> None:
        """With ``now`` at its Date (aware, naive UTC, or a UNIX time) the vector verifies."""
        verify(now=now)

    def test_default_now_is_the_wall_clock(self) -> None:
        """Without ``now`` the 2025 vector is stale, and a freshly dated callback verifies."""
        assert failed_check(now=None) == "date"
        verify(signed(date=_signing.http_date()), now=None)

    @pytest.mark.parametrize(
        "transform",
        [
            pytest.param(lambda h: {k.lower(): v for k, v in h.items()}, id="lower"),
            pytest.param(lambda h: {k.upper(): v for k, v in h.items()}, id="upper"),
            pytest.param(lambda h: CIMultiDictProxy(CIMultiDict(h)), id="CIMultiDictProxy"),
        ],
    )
    def test_header_names_are_case_insensitive(self, transform: Callable[[dict[str, str]], Any]) -> None:
        """Header names match in any case and from any mapping, multidicts included."""
        verify(transform(HEADERS))

    def test_method_case_does_not_matter(self) -> None:
        """The method is signed upper-cased."""
        verify(method="post")

    def test_host_is_not_signed(self) -> None:
        """Only the path and query of the registered URL are signed, so a proxy's Host does not matter."""
        verify(url="https://hooks.example.com/vidu/callback?name=james&age=36")

    def test_empty_path_is_slash(self) -> None:
        """A registered URL without a path is signed as ``/``."""
        headers = signed(url="https://hooks.example.com")
        verify(headers, url="https://hooks.example.com")
        verify(headers, url="https://hooks.example.com/")

    def test_surrounding_whitespace_in_metadata_is_ignored(self) -> None:
        """Optional whitespace around the X-HMAC values (as a dict may keep it) is not significant."""
        headers = {**HEADERS, "X-HMAC-SIGNATURE": f" {SIGNATURE}\t", "X-HMAC-ALGORITHM": " hmac-sha256 "}
        verify(headers)


class TestTampering:
    """Every single-character change to what is signed fails, and the error names the check."""

    @pytest.mark.parametrize("index", range(len(SIGNATURE)))
    def test_signature_character(self, index: int) -> None:
        """Each character of the signature matters."""
        assert failed_check({**HEADERS, "X-HMAC-SIGNATURE": mutate(SIGNATURE, index)}) == "signature"

    @pytest.mark.parametrize("index", range(len(NONCE)))
    def test_nonce_character(self, index: int) -> None:
        """Each character of the nonce is signed."""
        assert failed_check({**HEADERS, "x-request-nonce": mutate(NONCE, index)}) == "signature"

    @staticmethod
    def expected_date_check(date: str) -> str:
        try:
            moment = parsedate_to_datetime(date)
        except ValueError:
            return "date"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return "date" if abs((moment - NOW).total_seconds()) > 300 else "signature"

    @pytest.mark.parametrize("index", range(len(DATE)))
    def test_date_character(self, index: int) -> None:
        """A changed Date fails as ``date`` when unreadable or out of the window, else as ``signature``."""
        date = mutate(DATE, index)
        assert failed_check({**HEADERS, "Date": date}) == self.expected_date_check(date)

    def test_date_changes_hit_both_checks(self) -> None:
        """The Date mutations above exercise both outcomes (the oracle is not trivially one-sided)."""
        outcomes = {self.expected_date_check(mutate(DATE, i)) for i in range(len(DATE))}
        assert outcomes == {"date", "signature"}

    @pytest.mark.parametrize("index", range(URL.index("/vidu"), len(URL)))
    def test_path_and_query_character(self, index: int) -> None:
        """Each character of the registered path and query is signed."""
        assert failed_check(url=mutate(URL, index)) == "signature"

    def test_query_order_matters(self) -> None:
        """The query is signed as written, not sorted."""
        assert failed_check(url="http://127.0.0.1:8080/vidu/callback?age=36&name=james") == "signature"

    def test_other_key(self) -> None:
        """A different API key fails."""
        assert failed_check(key="another-key") == "signature"

    def test_other_method(self) -> None:
        """The method is signed."""
        assert failed_check(method="PUT") == "signature"

    def test_non_ascii_signature(self) -> None:
        """A non-ASCII signature is a mismatch, not a TypeError from compare_digest."""
        assert failed_check({**HEADERS, "X-HMAC-SIGNATURE": "é" * 44}) == "signature"

    def test_unencodable_signed_value(self) -> None:
        """A lone surrogate in a signed value (aiohttp's decoding of a bad byte) is a signature failure."""
        assert failed_check({**HEADERS, "x-request-nonce": "\ud800"}) == "signature"


class TestDateWindow:
    """Date must be within ±max_skew of now."""

    @pytest.mark.parametrize(
        ("offset", "max_skew", "ok"),
        [
            (300, 300.0, True),
            (301, 300.0, False),
            (-300, 300.0, True),
            (-301, 300.0, False),
            (10, 10.0, True),
            (11, 10.0, False),
            (-11, 10.0, False),
            (3600, 7200.0, True),
            (0, 0.0, True),
            (1, 0.0, False),
        ],
    )
    def test_window(self, offset: int, max_skew: float, ok: bool) -> None:
        """``now`` ``offset`` seconds after the Date passes exactly when ``|offset| <= max_skew``."""
        now = NOW + timedelta(seconds=offset)
        if ok:
            verify(now=now, max_skew=max_skew)
        else:
            with pytest.raises(CallbackVerificationError, match=r"old|future") as info:
                verify(now=now, max_skew=max_skew)
            assert info.value.check == "date"

    def test_stale_and_future_are_told_apart(self) -> None:
        """The message says whether the Date is old or in the future."""
        with pytest.raises(CallbackVerificationError, match="old"):
            verify(now=NOW_TS + 1000)
        with pytest.raises(CallbackVerificationError, match="future"):
            verify(now=NOW_TS - 1000)

    @pytest.mark.parametrize(
        "date", ["yesterday", "Tue, 06 May 99999 12:09:42 GMT", "Tue, 06 May 2025 12:09:42 +9999"]
    )
    def test_unparseable_date(self, date: str) -> None:
        """A Date that is not an HTTP date fails as ``date``, even when signed."""
        assert failed_check(signed(date=date)) == "date"

    def test_date_without_zone_is_gmt(self) -> None:
        """A signed Date without a zone is read as GMT."""
        date = "Tue, 06 May 2025 12:09:42"
        verify(signed(date=date))

    @pytest.mark.parametrize("now", [float("nan"), float("inf"), float("-inf")])
    def test_impossible_now_fails_closed(self, now: float) -> None:
        """A NaN or infinite ``now`` never passes the window."""
        assert failed_check(now=now) == "date"

    def test_negative_skew_is_a_programming_error(self) -> None:
        """A negative max_skew is refused with ValueError."""
        with pytest.raises(ValueError, match="max_skew"):
            verify(max_skew=-1)


class TestNonces:
    """A nonce is accepted once per window; the cache is bounded and expires."""

    def test_replay_is_refused(self) -> None:
        """The same genuine request twice: the second fails as ``nonce-replay``."""
        nonces = NonceCache()
        verify(nonces=nonces)
        assert failed_check(nonces=nonces) == "nonce-replay"
        assert len(nonces) == 1

    def test_without_a_cache_replays_pass(self) -> None:
        """Replay detection needs a cache (documented)."""
        verify()
        verify()

    def test_forgery_does_not_burn_the_nonce(self) -> None:
        """A forged request carrying a genuine nonce is refused and does not block the genuine one."""
        nonces = NonceCache()
        forged = {**HEADERS, "X-HMAC-SIGNATURE": signed(key="attacker")["X-HMAC-SIGNATURE"]}
        assert failed_check(forged, nonces=nonces) == "signature"
        assert failed_check({**HEADERS, "Date": "garbage"}, nonces=nonces) == "date"
        assert len(nonces) == 0
        verify(nonces=nonces)

    def test_replay_after_ttl_is_refused_by_the_date(self) -> None:
        """Once a nonce is forgotten, its Date is out of the window: nothing gets through."""
        nonces = NonceCache(ttl=600.0)
        first = NOW_TS - 300  # the worst case: accepted while its Date was max_skew in the future
        verify(now=first, nonces=nonces)
        assert failed_check(now=first + 600, nonces=nonces) == "nonce-replay"
        assert failed_check(now=first + 600.5, nonces=nonces) == "date"

    def test_ttl_shorter_than_the_window_is_refused(self) -> None:
        """A cache that would forget a nonce while its Date is still acceptable is a ValueError."""
        with pytest.raises(ValueError, match="ttl"):
            verify(nonces=NonceCache(ttl=599.0))
        verify(nonces=NonceCache(ttl=20.0), max_skew=10.0)

    def test_check_and_add(self) -> None:
        """New → True and remembered; again → False; after ttl → True again."""
        cache = NonceCache(ttl=10.0)
        assert cache.check_and_add("a", 100.0)
        assert not cache.check_and_add("a", 105.0)
        assert not cache.check_and_add("a", 110.0)
        assert cache.check_and_add("a", 110.5)
        assert not cache.check_and_add("a", 115.0)

    def test_expired_entries_are_dropped(self) -> None:
        """Expired nonces leave the cache as time passes."""
        cache = NonceCache(ttl=10.0)
        for i in range(100):
            assert cache.check_and_add(f"n{i}", float(i) / 10)
        assert len(cache) == 100
        assert cache.check_and_add("late", 30.0)
        assert len(cache) == 1

    def test_size_is_bounded(self) -> None:
        """Past max_size the oldest nonces are evicted."""
        cache = NonceCache(max_size=3, ttl=1000.0)
        for nonce in "abcd":
            assert cache.check_and_add(nonce, 0.0)
        assert len(cache) == 3
        assert cache.check_and_add("a", 1.0)  # evicted, so new again
        assert not cache.check_and_add("d", 1.0)

    def test_default_clock(self) -> None:
        """Without ``now`` the wall clock is used."""
        cache = NonceCache()
        assert cache.check_and_add("x")
        assert not cache.check_and_add("x")
        assert "max_size=100000" in repr(cache)

    @pytest.mark.parametrize(("max_size", "ttl"), [(0, 1.0), (1, 0.0), (1, -1.0), (1, float("nan"))])
    def test_bad_configuration(self, max_size: int, ttl: float) -> None:
        """A size under 1 or a non-positive ttl is a ValueError."""
        with pytest.raises(ValueError, match=r"max_size|ttl"):
            NonceCache(max_size=max_size, ttl=ttl)


class TestHeaders:
    """The required headers, their values and the signed list."""

    @pytest.mark.parametrize("name", REQUIRED)
    def test_missing(self, name: str) -> None:
        """Each required header missing fails as ``missing-header``, naming it."""
        with pytest.raises(CallbackVerificationError, match=name) as info:
            verify(without(HEADERS, name))
        assert info.value.check == "missing-header"

    @pytest.mark.parametrize("name", REQUIRED)
    def test_empty(self, name: str) -> None:
        """An empty required header counts as missing."""
        assert failed_check({**HEADERS, name: " "}) == "missing-header"

    def test_signed_header_missing(self) -> None:
        """A header named in the signed list but absent fails as ``missing-header``, naming it."""
        headers = without(signed(extra={"X-Custom": "v"}), "X-Custom")
        with pytest.raises(CallbackVerificationError, match="X-Custom") as info:
            verify(headers)
        assert info.value.check == "missing-header"

    @pytest.mark.parametrize("algorithm", ["hmac-sha1", "sha256", "hmac-sha256x"])
    def test_wrong_algorithm(self, algorithm: str) -> None:
        """Only hmac-sha256 is accepted."""
        assert failed_check({**HEADERS, "X-HMAC-ALGORITHM": algorithm}) == "algorithm"

    def test_algorithm_case(self) -> None:
        """The algorithm name is case-insensitive."""
        verify({**HEADERS, "X-HMAC-ALGORITHM": "HMAC-SHA256"})

    @pytest.mark.parametrize("access_key", ["VIDU", "other", "vidu2"])
    def test_wrong_access_key(self, access_key: str) -> None:
        """The access key must be ``vidu``."""
        assert failed_check({**HEADERS, "X-HMAC-ACCESS-KEY": access_key}) == "access-key"

    @pytest.mark.parametrize(
        "names",
        [
            "Date",
            "x-request-nonce",
            "Date;X-Custom",
            "Date;x-request-nonce;bad name",
            "Date;;x-request-nonce",
            "Date;x:y",
        ],
    )
    def test_bad_signed_list(self, names: str) -> None:
        """The signed list must name Date and x-request-nonce, and only header names."""
        headers = {**HEADERS, "X-Custom": "v", "X-HMAC-SIGNED-HEADERS": names}
        assert failed_check(headers) == "signed-headers"

    @pytest.mark.parametrize("value", ["a\nb", "a\rb", "v\nx-request-nonce:other"])
    def test_line_break_in_signed_value(self, value: str) -> None:
        """A line break in a signed value could forge the signing string's shape, so it is refused."""
        headers = signed(extra={"X-Custom": value})
        assert failed_check(headers) == "signed-headers"

    def test_extra_signed_headers_verify(self) -> None:
        """Extra names in the signed list are signed in order and verify."""
        headers = signed(extra={"X-Custom": "hello", "X-Other": "42"})
        assert headers["X-HMAC-SIGNED-HEADERS"] == "Date;x-request-nonce;X-Custom;X-Other"
        verify(headers)
        assert failed_check({**headers, "X-Custom": "hellp"}) == "signature"
        reordered = {**headers, "X-HMAC-SIGNED-HEADERS": "Date;x-request-nonce;X-Other;X-Custom"}
        assert failed_check(reordered) == "signature"

    def test_signed_list_names_are_case_insensitive(self) -> None:
        """The list may spell Date and the nonce in any case; its spelling is what is signed."""
        date_name, nonce_name = "DATE", "X-Request-Nonce"
        text = _signing.signing_string("POST", URL, DATE, [(date_name, DATE), (nonce_name, NONCE)])
        headers = {
            **HEADERS,
            "X-HMAC-SIGNED-HEADERS": f"{date_name};{nonce_name}",
            "X-HMAC-SIGNATURE": _signing.sign(KEY, text),
        }
        verify(headers)

    def test_first_of_repeated_headers_wins(self) -> None:
        """With a header repeated in a multidict, the first value is the one verified."""
        genuine = CIMultiDict(HEADERS)
        genuine.add("x-request-nonce", "another")
        verify(CIMultiDictProxy(genuine))
        spoofed = CIMultiDict({"x-request-nonce": "another"})
        spoofed.extend(HEADERS)
        assert failed_check(CIMultiDictProxy(spoofed)) == "signature"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)


class TestHypothesis:
    """Arbitrary headers never raise anything but CallbackVerificationError; arbitrary bodies only ResponseValidationError."""

    names = st.sampled_from([*REQUIRED, "date", "X-HMAC-signature", "X-Custom"]) | st.text(max_size=20)

    @given(st.dictionaries(names, st.text(max_size=60), max_size=10))
    def test_arbitrary_headers(self, headers: dict[str, str]) -> None:
        """A random header mapping is refused with a named check."""
        with pytest.raises(CallbackVerificationError) as info:
            verify(headers, nonces=NonceCache())
        assert info.value.check in {
            "missing-header",
            "algorithm",
            "access-key",
            "signed-headers",
            "date",
            "signature",
        }

    @given(
        st.fixed_dictionaries(
            {name: st.just(value) | st.text(max_size=60) for name, value in HEADERS.items()}
        ),
        st.none() | st.floats(allow_nan=True) | st.integers(-(2**40), 2**40).map(float),
    )
    def test_perturbed_vector(self, headers: dict[str, str], now: float | None) -> None:
        """The vector with any values replaced, at any moment: verified or a CallbackVerificationError."""
        with suppress(CallbackVerificationError):
            verify(headers, now=NOW_TS if now is None else now, nonces=NonceCache())

    @given(st.binary(max_size=200) | st.text(max_size=200))
    def test_arbitrary_body(self, body: bytes | str) -> None:
        """Any body parses to a Task or fails with ResponseValidationError."""
        try:
            task = parse_callback(body)
        except ResponseValidationError:
            return
        assert isinstance(task, Task)

    @given(
        st.fixed_dictionaries(
            {"id": st.text(min_size=1, max_size=5)},
            optional=dict.fromkeys([k for k in BODY if k != "id"], JSON_VALUES),
        )
    )
    def test_arbitrary_task_shapes(self, body: dict[str, Any]) -> None:
        """Any JSON object with an id: a Task or ResponseValidationError."""
        try:
            task = parse_callback(json.dumps(body))
        except ResponseValidationError:
            return
        assert task.id


class TestParse:
    """parse_callback reads the body leniently, and verify_request composes both steps."""

    @pytest.mark.parametrize(
        "encode", [lambda b: b, json.dumps, lambda b: json.dumps(b).encode()], ids=["dict", "str", "bytes"]
    )
    def test_fixture_body(self, encode: Callable[[Any], Any]) -> None:
        """The documented body is a successful task with its creation."""
        task = parse_callback(encode(BODY))
        assert task.id == "916205061116293120"
        assert task.state is TaskState.SUCCESS
        assert task.raw_state == "success"
        assert task.credits == 40
        assert task.payload == "job-42"
        assert [c.url for c in task.creations] == ["https://cdn.example.com/video.mp4"]
        assert task.creations[0].watermarked_url == "https://cdn.example.com/video_wm.mp4"

    @pytest.mark.parametrize(
        "body",
        [
            b"{",
            b"",
            b"\xff\xfe",
            "not json",
            b"[]",
            b"42",
            b'{"state": "success"}',
            b"[" * 100_000,
        ],
    )
    def test_bad_body(self, body: bytes | str) -> None:
        """Not JSON, not an object, or no id: ResponseValidationError."""
        with pytest.raises(ResponseValidationError):
            parse_callback(body)

    def test_verify_request(self) -> None:
        """A genuine request gives its task."""
        task = verify_request(
            method="POST", url=URL, headers=HEADERS, body=json.dumps(BODY), api_key=KEY, now=NOW
        )
        assert task.state is TaskState.SUCCESS

    def test_verify_request_checks_before_reading(self) -> None:
        """A forged request with a bad body fails verification, not parsing."""
        with pytest.raises(CallbackVerificationError):
            verify_request(method="POST", url=URL, headers=HEADERS, body=b"{", api_key="other", now=NOW)
        with pytest.raises(ResponseValidationError):
            verify_request(method="POST", url=URL, headers=HEADERS, body=b"{", api_key=KEY, now=NOW)


# --- the aiohttp receiver -------------------------------------------------------------------------

REGISTERED = "https://hooks.example.com/vidu/callback?tenant=7"
PATH = "/vidu/callback?tenant=7"


def fresh_headers(*, key: str = KEY, url: str = REGISTERED, nonce: str | None = None) -> dict[str, str]:
    headers = _signing.signed_headers(
        key=key, url=url, nonce=nonce or str(uuid.uuid4()), date=_signing.http_date()
    )
    headers["Content-Type"] = "application/json"
    return headers


def task_body(task_id: str = "t-1", state: str = "success") -> bytes:
    return json.dumps({**BODY, "id": task_id, "state": state}).encode()


@asynccontextmanager
async def serve(
    on_update: Callable[[Task], Awaitable[None] | None], *, setup: bool = True, **kwargs: Any
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], CallbackReceiver]]:
    receiver = CallbackReceiver(api_key=KEY, callback_url=REGISTERED, on_update=on_update, **kwargs)
    app = web.Application()
    if setup:
        receiver.setup(app)
    else:
        app.router.add_post("/vidu/callback", receiver.handle)
    async with TestClient(TestServer(app)) as client:
        yield client, receiver


async def post(
    client: TestClient[web.Request, web.Application], body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with client.post(PATH, data=body, headers=headers or fresh_headers()) as response:
        return response.status, await response.json()


class TestReceiver:
    """The aiohttp receiver end to end: verifies against the registered URL, de-duplicates, answers fast."""

    async def test_valid_callback(self) -> None:
        """A genuine callback is answered 200 {} and handed to on_update (the Host differs from the registered URL)."""
        got: list[Task] = []
        async with serve(got.append) as (client, receiver):
            assert await post(client, task_body()) == (200, {})
        assert [(t.id, t.state) for t in got] == [("t-1", TaskState.SUCCESS)]
        assert receiver.stats.accepted == 1

    async def test_duplicate_is_delivered_once(self) -> None:
        """A second genuine delivery of the same (task, state) is answered 200 and not handed over again."""
        got: list[Task] = []
        async with serve(got.append) as (client, receiver):
            assert await post(client, task_body()) == (200, {})
            assert await post(client, task_body()) == (200, {})
            assert await post(client, task_body(state="processing")) == (200, {})
        assert [t.raw_state for t in got] == ["success", "processing"]
        assert (receiver.stats.accepted, receiver.stats.duplicates) == (2, 1)

    async def test_forged(self) -> None:
        """A callback signed with another key is answered 401 naming the check, and counted."""
        got: list[Task] = []
        async with serve(got.append) as (client, receiver):
            status, body = await post(client, task_body(), fresh_headers(key="attacker"))
            assert status == 401
            assert body == {"error": "verification failed", "check": "signature"}
            headers = without(fresh_headers(), "x-request-nonce")
            assert (await post(client, task_body(), headers))[0] == 401
        assert got == []
        assert dict(receiver.stats.rejected) == {"signature": 1, "missing-header": 1}
        assert receiver.stats.total_rejected == 2

    async def test_wrong_registered_url(self) -> None:
        """Signed for another registered URL (the path Vidu was given differs): 401."""
        async with serve(lambda task: None) as (client, _):
            headers = fresh_headers(url="https://hooks.example.com/vidu/callback?tenant=8")
            assert await post(client, task_body(), headers) == (
                401,
                {"error": "verification failed", "check": "signature"},
            )

    async def test_replay(self) -> None:
        """The same request sent twice: the second is answered 401 ``nonce-replay``."""
        got: list[Task] = []
        async with serve(got.append) as (client, _):
            headers = fresh_headers()
            assert (await post(client, task_body(), headers))[0] == 200
            status, body = await post(client, task_body("t-2"), headers)
        assert (status, body["check"]) == (401, "nonce-replay")
        assert len(got) == 1

    async def test_stale(self) -> None:
        """With the receiver's clock an hour ahead, a fresh callback is stale: 401 ``date``."""
        async with serve(lambda task: None, clock=lambda: datetime.now(UTC).timestamp() + 3600) as (
            client,
            _,
        ):
            assert (await post(client, task_body()))[1]["check"] == "date"

    @pytest.mark.parametrize("body", [b"{", b"[]", b'{"state": "success"}'])
    async def test_bad_body(self, body: bytes) -> None:
        """A genuine callback whose body is not a task is answered 400."""
        got: list[Task] = []
        async with serve(got.append) as (client, receiver):
            assert await post(client, body) == (400, {"error": "unreadable body"})
        assert (receiver.stats.bad_body, got) == (1, [])

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream", None]
    )
    async def test_body_that_is_not_json_is_refused_415(self, content_type: str | None) -> None:
        """Vidu posts JSON (``Content-Type: application/json``): anything else is answered 415, unread."""
        got: list[Task] = []
        headers = fresh_headers()
        del headers["Content-Type"]
        if content_type is not None:
            headers["Content-Type"] = content_type
        # skip_auto_headers: without a Content-Type of its own, aiohttp would send octet-stream.
        async with (
            serve(got.append) as (client, receiver),
            client.post(
                PATH, data=task_body(), headers=headers, skip_auto_headers=["Content-Type"]
            ) as response,
        ):
            assert response.status == 415
            assert await response.json() == {"error": "expected Content-Type: application/json"}
        assert got == []
        assert (receiver.stats.unsupported_media_type, receiver.stats.accepted) == (1, 0)
        assert len(receiver.nonces) == 0  # refused before verifying: the nonce is not spent

    @pytest.mark.parametrize(
        "content_type",
        ["application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"],
    )
    async def test_json_with_parameters_is_accepted(self, content_type: str) -> None:
        got: list[Task] = []
        headers = {**fresh_headers(), "Content-Type": content_type}
        async with serve(got.append) as (client, _):
            assert await post(client, task_body(), headers) == (200, {})
        assert len(got) == 1

    async def test_only_post(self) -> None:
        """Other methods are not routed."""
        async with (
            serve(lambda task: None) as (client, _),
            client.get(PATH, headers=fresh_headers()) as response,
        ):
            assert response.status == 405

    async def test_async_consumer_does_not_hold_the_response(self) -> None:
        """An async on_update runs after the 200, on the receiver's consumers."""
        release = anyio.Event()
        done: list[str] = []

        async def on_update(task: Task) -> None:
            await release.wait()
            done.append(task.id)

        async with serve(on_update) as (client, _):
            with anyio.fail_after(5):
                assert await post(client, task_body()) == (200, {})
            assert done == []
            release.set()
        # Shutdown waits (up to shutdown_timeout) for what was handed over.
        assert done == ["t-1"]

    async def test_backpressure(self) -> None:
        """With the consumers busy and the buffer full, an update is answered 503 and can be retried."""
        started = anyio.Event()
        release = anyio.Event()
        done: list[str] = []

        async def on_update(task: Task) -> None:
            started.set()
            await release.wait()
            done.append(task.id)

        async with serve(on_update, max_pending=1, max_concurrency=1) as (client, receiver):
            with anyio.fail_after(5):
                assert (await post(client, task_body("a")))[0] == 200
                await started.wait()  # "a" is running, the buffer is empty
                assert (await post(client, task_body("b")))[0] == 200  # buffered
                assert (await post(client, task_body("c")))[0] == 503  # no room
                release.set()
                assert receiver.stats.unavailable == 1
                # Not recorded as seen, so Vidu's retry gets through once there is room.
                while (await post(client, task_body("c")))[0] == 503:
                    await anyio.wait_all_tasks_blocked()
        assert sorted(done) == ["a", "b", "c"]

    async def test_on_update_errors_are_counted(self) -> None:
        """A failing on_update (sync or async) is logged and counted; the callback is still acknowledged."""

        def broken(task: Task) -> None:
            raise RuntimeError("boom")

        async with serve(broken) as (client, receiver):
            assert await post(client, task_body()) == (200, {})
        assert (receiver.stats.errors, receiver.stats.accepted) == (1, 1)

        after = anyio.Event()

        async def broken_then_fine(task: Task) -> None:
            if task.id == "bad":
                raise RuntimeError("boom")
            after.set()

        async with serve(broken_then_fine, max_concurrency=1) as (client, receiver):
            assert (await post(client, task_body("bad")))[0] == 200
            assert (await post(client, task_body("good")))[0] == 200
            with anyio.fail_after(5):
                await after.wait()
            assert receiver.stats.errors == 1

    async def test_not_running(self) -> None:
        """Mounted without its lifecycle, an async on_update cannot run: 503, and no 'never awaited' warning."""

        async def on_update(task: Task) -> None:
            raise AssertionError("must not run")

        async with serve(on_update, setup=False) as (client, receiver):
            assert not receiver.running
            assert (await post(client, task_body()))[0] == 503
        assert receiver.stats.unavailable == 1

    async def test_sync_on_update_needs_no_lifecycle(self) -> None:
        """A plain on_update runs inline, so the handler works mounted on its own."""
        got: list[Task] = []
        async with serve(got.append, setup=False) as (client, _):
            assert await post(client, task_body()) == (200, {})
        assert len(got) == 1

    async def test_shutdown_cancels_slow_consumers(self) -> None:
        """At shutdown, consumers still running after shutdown_timeout are cancelled and awaited."""
        started = anyio.Event()
        cancelled: list[bool] = []

        async def on_update(task: Task) -> None:
            started.set()
            try:
                await anyio.sleep_forever()
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        async with serve(on_update, shutdown_timeout=0.0) as (client, receiver):
            assert (await post(client, task_body()))[0] == 200
            with anyio.fail_after(5):
                await started.wait()
        assert cancelled == [True]
        assert not receiver.running

    async def test_lifecycle(self) -> None:
        """The receiver is an async context manager that refuses to be entered twice."""
        receiver = CallbackReceiver(api_key=KEY, callback_url=REGISTERED, on_update=lambda task: None)
        assert "test-secret-key" not in repr(receiver)
        async with receiver:
            assert receiver.running
            with pytest.raises(RuntimeError, match="already running"):
                await receiver.__aenter__()
        assert not receiver.running
        await receiver.__aexit__(None, None, None)  # idempotent

    def test_key_is_not_an_attribute_in_the_clear(self) -> None:
        """Neither vars(), repr, str nor pickling the receiver shows the key (it is held as a secret)."""
        receiver = CallbackReceiver(api_key=KEY, callback_url=REGISTERED, on_update=print)  # print pickles
        shown = [repr(vars(receiver)), str(vars(receiver)), repr(receiver), str(receiver)]
        shown += [str(value) for value in vars(receiver).values()]
        assert not [text for text in shown if KEY in text]
        with pytest.raises(TypeError):
            pickle.dumps(receiver)

    async def test_key_still_verifies(self) -> None:
        """The key held as a secret is the one requests are verified with."""
        got: list[Task] = []
        async with serve(got.append) as (client, _):
            assert await post(client, task_body()) == (200, {})
            assert (await post(client, task_body("t-2"), fresh_headers(key="other")))[0] == 401
        assert len(got) == 1

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"api_key": ""},
            {"callback_url": "/vidu/callback"},
            {"callback_url": "ftp://x/y"},
            {"max_pending": 0},
            {"max_concurrency": 0},
            {"max_skew": 400.0},
            {"max_skew": -1.0},
        ],
    )
    def test_bad_configuration(self, kwargs: dict[str, Any]) -> None:
        """Impossible settings are refused when the receiver is built."""
        settings: dict[str, Any] = {
            "api_key": KEY,
            "callback_url": REGISTERED,
            "on_update": lambda task: None,
        }
        with pytest.raises(ValueError):
            CallbackReceiver(**{**settings, **kwargs})

    async def test_make_callback_app_on_a_real_port(self) -> None:
        """make_callback_app serves the registered path on a real socket and exposes its receiver."""
        got: list[Task] = []
        app = make_callback_app(api_key=KEY, callback_url=REGISTERED, on_update=got.append)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"http://127.0.0.1:{port}{PATH}", data=task_body(), headers=fresh_headers()
                ) as response,
            ):
                assert response.status == 200
        finally:
            await runner.cleanup()
        assert len(got) == 1
        assert app[RECEIVER_KEY].stats.accepted == 1

    async def test_path_override(self) -> None:
        """``path`` routes where a proxy forwards, while verification still uses the registered URL."""
        got: list[Task] = []
        app = make_callback_app(
            api_key=KEY, callback_url=REGISTERED, on_update=got.append, path="/internal/hook"
        )
        async with (
            TestClient(TestServer(app)) as client,
            client.post("/internal/hook", data=task_body(), headers=fresh_headers()) as response,
        ):
            assert response.status == 200
        assert len(got) == 1


# --- the FastAPI/Starlette recipe -----------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_callbacks.py"


def load_example() -> Any:
    pytest.importorskip("starlette")
    spec = importlib.util.spec_from_file_location("fastapi_callbacks_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def asgi_post(app: Any, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    """One POST through an ASGI app, without an HTTP client library."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(content)


class TestStarletteExample:
    """examples/fastapi_callbacks.py verifies against the registered URL and answers 200, 401 and 400."""

    async def test_route(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Genuine → 200 and confirmed in the background; replayed and forged → 401; unreadable → 400."""
        example = load_example()
        app = example.make_app()
        url = example.CALLBACK_URL

        def headers(key: str = example.API_KEY) -> dict[str, str]:
            return _signing.signed_headers(
                key=key, url=url, nonce=str(uuid.uuid4()), date=_signing.http_date()
            )

        genuine = headers()
        path = "/vidu/callback"
        assert await asgi_post(app, path, genuine, task_body("demo")) == (200, {})
        assert "task demo says 'success'" in capsys.readouterr().out
        assert (await asgi_post(app, path, genuine, task_body("demo")))[1]["check"] == "nonce-replay"
        assert (await asgi_post(app, path, headers("wrong"), task_body()))[1]["check"] == "signature"
        assert await asgi_post(app, path, headers(), b"{") == (400, {"error": "unreadable body"})

    def test_main(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The script runs as documented (starlette's TestClient wants httpx2)."""
        pytest.importorskip("httpx2")
        load_example().main()
        out = capsys.readouterr().out
        assert "genuine: 200" in out
        assert "nonce-replay" in out


# --- against the emulator's real deliveries -------------------------------------------------------


@asynccontextmanager
async def receiving(
    expected_responses: int,
) -> AsyncIterator[tuple[str, list[Task], CallbackReceiver, anyio.Event]]:
    """A make_callback_app receiver on a real socket; the event fires after ``expected_responses`` answers."""
    got: list[Task] = []
    answered = anyio.Event()
    count = 0

    async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
        nonlocal count
        count += 1
        if count >= expected_responses:
            answered.set()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook?job=7"
        app = make_callback_app(api_key="emu-key", callback_url=url, on_update=got.append)
        app.on_response_prepare.append(on_response_prepare)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            yield url, got, app[RECEIVER_KEY], answered
        finally:
            await runner.cleanup()


class TestAgainstTheEmulator:
    """The receiver accepts the emulator's signed deliveries, collapses its duplicates and refuses its forgeries."""

    @staticmethod
    async def create(emulator_callbacks: CallbackConfig, url: str) -> Emulator:
        config = EmulatorConfig(
            api_key="emu-key", created_time=0.01, processing_time=0.05, callbacks=emulator_callbacks
        )
        emu = Emulator(config)
        await emu.start()
        request = {
            "model": "viduq3",
            "subjects": [{"name": "Ming", "images": ["https://example.com/ming.png"]}],
            "prompt": "@Ming cooks hot pot.",
            "callback_url": url,
        }
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Token {emu.api_key}"}) as session,
            session.post(f"{emu.base_url}/ent/v2/reference2video", json=request) as response,
        ):
            assert response.status == 200, await response.text()
        return emu

    async def test_duplicates_delivered_once(self) -> None:
        """Every delivery sent twice: processing and success each reach on_update once."""
        async with receiving(4) as (url, got, receiver, answered):
            emu = await self.create(CallbackConfig(duplicate=1.0), url)
            try:
                with anyio.fail_after(10):
                    await answered.wait()
            finally:
                await emu.aclose()
        assert sorted(t.raw_state for t in got) == ["processing", "success"]
        assert (receiver.stats.accepted, receiver.stats.duplicates, receiver.stats.total_rejected) == (
            2,
            2,
            0,
        )

    async def test_forgeries_refused(self) -> None:
        """Every delivery forged: all answered 401 as ``signature``, none handed over."""
        async with receiving(2) as (url, got, receiver, answered):
            emu = await self.create(CallbackConfig(forge=1.0, retries=0), url)
            try:
                with anyio.fail_after(10):
                    await answered.wait()
            finally:
                await emu.aclose()
        assert got == []
        assert set(receiver.stats.rejected) == {"signature"}
        assert receiver.stats.accepted == 0
