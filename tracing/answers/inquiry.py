"""Who asks a tracing question, why, and from where: what every audit row of one call repeats.

Rows are written through the one audit writer (:func:`tracing.storage.audit_log.record`) before the
answer leaves; a row that cannot be written refuses the answer (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from tracing.storage import audit_log
from tracing.storage.store import Store


@dataclass(frozen=True)
class Inquiry:
    ctx: Context
    store: Store
    principal: Principal
    action: str
    """The audit action (``visits``, ``contacts``, ``exposures``, ``sources``, ...)."""
    reason: str
    ip: str
    """The client address (behind a trusted proxy, the forwarded client's)."""

    @property
    def scope(self) -> str:
        return self.principal.scope

    async def record(self, params: dict[str, Any], rows: int) -> None:
        """The audit row of an answer given: its parameters and the rows it returned."""
        await audit_log.record(
            self.ctx, self.store, self.principal, self.action, self.reason, params, rows, self.ip
        )

    async def refused(self, params: dict[str, Any], outcome: str) -> None:
        """The audit row of a refusal (no rows; ``outcome`` says why)."""
        await self.record({**params, "outcome": outcome}, 0)
