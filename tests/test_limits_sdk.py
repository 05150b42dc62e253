"""Every row of the shared limits table, checked by the SDK's own validation."""

from __future__ import annotations

import pytest
from limits import LIMITS, Limit

from vidu_async._convert import request_from_json, request_to_json
from vidu_async.exceptions import RequestValidationError


class TestSDKValidation:
    """The SDK accepts every row just inside a documented limit and refuses every row just outside."""

    @pytest.mark.parametrize("row", LIMITS, ids=[row.id for row in LIMITS])
    def test_row(self, row: Limit) -> None:
        """``ok`` rows construct; the others name the row's field with the row's reason."""
        if row.ok:
            request = request_from_json(row.body)
            assert request.model == row.body["model"]
            return
        with pytest.raises(RequestValidationError) as info:
            request_from_json(row.body)
        found = [(p.field, p.reason) for p in info.value.problems]
        assert (row.field, row.reason) in found, str(info.value)

    @pytest.mark.parametrize("row", [r for r in LIMITS if r.ok], ids=[r.id for r in LIMITS if r.ok])
    def test_accepted_rows_round_trip(self, row: Limit) -> None:
        """Accepted rows serialize back to the same body (the alias row to its documented spelling)."""
        expected = dict(row.body)
        if expected.get("audio_type") == "sound-effect_only":
            expected["audio_type"] = "sound_effect_only"
        assert request_to_json(request_from_json(row.body)) == expected

    def test_table_covers_both_outcomes(self) -> None:
        """The table has rows on both sides of its limits, with unique ids."""
        assert {row.ok for row in LIMITS} == {True, False}
        assert len({row.id for row in LIMITS}) == len(LIMITS)
        assert all(row.field and row.reason for row in LIMITS if not row.ok)
