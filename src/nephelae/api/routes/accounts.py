"""`POST /api/v1/accounts` (ask for an account) and `GET /api/v1/me` (who am I, as the platform sees me)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from nephelae.accounts import registry
from nephelae.api.auth import Authenticated, ClientAddress, count_registration
from nephelae.api.deps import SessionDep
from nephelae.api.schemas import Me, RegisteredAccount, RegistrationRequest

router = APIRouter(tags=["accounts"])


@router.post(
    "/accounts",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(count_registration)],
    summary="Ask for an account",
)
def register_account(body: RegistrationRequest, session: SessionDep, address: ClientAddress) -> RegisteredAccount:
    """Record a registration, `pending` until an operator approves it and allows the partner's IP ranges.

    Open to anyone, rate-limited per address. 409 if the username or e-mail address is taken.
    """
    account = registry.register(session, body.to_registration(), address=address)
    return RegisteredAccount.of(account)


@router.get("/me", summary="Who am I")
def me(principal: Authenticated, session: SessionDep) -> Me:
    """The caller's account, role, projects, allowed networks, and the address their request came from."""
    account = registry.get_account(session, principal.username)
    return Me.of(account, principal)
