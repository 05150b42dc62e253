"""A batch's credit budget (``max_credits``): which creates may still be sent.

A create is sent only if the credits charged so far, those held for creates not answered yet, and
the price of the dearest task the batch has been charged for stay within the budget; until a
create has answered with its price, one is sent at a time. So a batch overspends by at most what
one task costs beyond the dearest before it, however many creates are in flight (stopping only
once the budget was charged overspent by the whole flight). When creates answer without a price,
only the credits charged so far are checked.
"""

from __future__ import annotations

from typing import Final

import anyio
import attrs

__all__ = ["CreditBudget", "Hold"]


@attrs.define(eq=False)
class Hold:
    """Credits held for one create until it is answered."""

    credits: int
    settled: bool = False


#: The hold of every create of a batch without a budget.
_UNLIMITED: Final = Hold(0)


class CreditBudget:
    """Credits charged by a batch, and a ``max_credits`` budget when one was given.

    Args:
        limit: The budget, or ``None`` for none (then :meth:`reserve` always succeeds at once and
            only :attr:`charged` is kept).
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        #: Credits charged by the batch's tasks so far (a failed task's refund taken off).
        self.charged = 0
        #: The dearest create answered so far (0 until one has a price).
        self.price = 0
        self._priced = False
        self._held = 0
        self._pending = 0
        self._moved = anyio.Event()

    async def reserve(self) -> Hold | None:
        """Hold credits for one more create, waiting while creates in flight decide whether it
        fits; ``None`` when it does not (nothing in flight can change that)."""
        if self.limit is None:
            return _UNLIMITED  # shared: nothing is held, and settle() ignores it
        while True:
            if self._priced and self.price:
                fits = self.charged + self._held + self.price <= self.limit
            else:
                fits = self.charged < self.limit and (self._priced or not self._pending)
            if fits:
                break
            if not self._pending:
                return None
            await self._moved.wait()
            self._moved = anyio.Event()
        hold = Hold(self.price)
        self._pending += 1
        self._held += hold.credits
        return hold

    def settle(self, hold: Hold | None, *, answered: bool, price: int) -> None:
        """The create ``hold`` was for answered (``answered``, at ``price``) or failed: its held
        credits go, and its price is learned."""
        if hold is None or hold.settled or self.limit is None:
            return
        hold.settled = True
        self._pending -= 1
        self._held -= hold.credits
        if answered:
            self._priced = True
            self.price = max(self.price, price)
        self._moved.set()

    def charge(self, credits: int) -> None:
        """Count credits charged (negative for a refund)."""
        self.charged += credits
