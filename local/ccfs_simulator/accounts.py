"""Developer accounts (seed 000): which ak/sk pairs exist, which developer account owns each tenant
space, and the time zone a request without ``accountId`` is read in. A request naming a tenant must
be signed by the ak owning it; a query without ``accountId`` covers the signing ak's tenants only."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from .config import SimulatorConfig
from .data import CallCenter

__all__ = ["Accounts"]


class Accounts:
    """The keys and the tenant → owning ak map of one simulator."""

    def __init__(self, config: SimulatorConfig, center: CallCenter) -> None:
        self._center = center
        self._keys = {config.ak: config.sk, **config.extra_keys}
        # A tenant without its own ak belongs to the default developer account.
        self._owner = {t.account_id: t.ak or config.ak for t in config.tenants}
        for tenant in config.tenants:
            if tenant.ak is not None and tenant.sk is not None:
                self._keys[tenant.ak] = tenant.sk

    def secret(self, ak: str) -> str | None:
        """The sk of ``ak`` (None: unknown), as :func:`ccfs.auth.verify` looks keys up."""
        return self._keys.get(ak)

    def is_tenant(self, account_id: str) -> bool:
        return account_id in self._owner

    def owns(self, ak: str, account_id: str) -> bool:
        return self._owner.get(account_id) == ak

    def accounts_of(self, ak: str) -> list[str]:
        """The tenants the developer account ``ak`` owns, in configuration order."""
        return [t.account_id for t in self._center.tenants if self.owns(ak, t.account_id)]

    def zone_for(self, account_id: str | None, ak: str) -> ZoneInfo:
        """The tenant's zone; without an accountId, that of the ak's first tenant (or the first)."""
        if account_id and self._center.tenant(account_id) is not None:
            return self._center.zone(account_id)
        owned = self.accounts_of(ak) or [self._center.tenants[0].account_id]
        return self._center.zone(owned[0])

    def tenant_keys(self, account_id: str) -> tuple[str, str]:
        """``(ak, sk)`` of the developer account owning ``account_id`` (its own, or the default)."""
        ak = self._owner[account_id]
        return ak, self._keys[ak]
