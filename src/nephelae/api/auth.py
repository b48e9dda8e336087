"""Who is calling, and from where: the access checks every route gets as FastAPI dependencies.

- `ClientAddress`: the socket peer; `X-Forwarded-For` is believed only from `settings.trusted_proxies`.
- `Authenticated`: the principal behind `Authorization: Bearer <token>`, checked by the accounts service (status,
  allowed networks, expiry, revocation; every refusal audited), with failed attempts throttled per address.
- `Administrator`: the same, and the caller must be an admin.
- `count_registration`: registrations are open to anyone, so they are rate-limited per address.

The throttles live on `app.state` (see `install_access_control`): per process and in memory, like `FailureThrottle`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nephelae.accounts import Principal, audit, authenticate_token
from nephelae.accounts.networks import address_in, parse_address, parse_network
from nephelae.accounts.throttle import FailureThrottle
from nephelae.api.deps import SessionDep, SettingsDep
from nephelae.config import Settings
from nephelae.errors import (
    AuthenticationRequired,
    ConfigurationError,
    InvalidInput,
    PermissionDenied,
    RateLimited,
)

_BEARER = HTTPBearer(
    auto_error=False,  # we answer a problem, and count the failure, ourselves
    description="An API token: ask an operator (`nephelae admin tokens create USER`).",
)
_HOW_TO_AUTHENTICATE = (
    "send `Authorization: Bearer <token>`; an operator creates tokens (`nephelae admin tokens create`)"
)


def install_access_control(app: FastAPI, settings: Settings) -> None:
    """Check the trusted proxies setting and keep this process's throttles on `app.state`."""
    for proxy in settings.trusted_proxies:
        try:
            parse_network(proxy)
        except InvalidInput as error:
            raise ConfigurationError(f"trusted_proxies: {error.detail}") from None
    limit, window = settings.auth_failure_limit, settings.auth_failure_window
    app.state.auth_throttle = FailureThrottle(limit, window)
    app.state.registration_throttle = FailureThrottle(limit, window)


def client_address(request: Request, settings: SettingsDep) -> str:
    """The caller's address: the socket peer, or the client a trusted proxy says it forwarded."""
    peer = _normalised(request.client.host if request.client else "")
    if not settings.trusted_proxies or not address_in(peer, settings.trusted_proxies):
        return peer  # anyone else's X-Forwarded-For is a claim, not a fact
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), settings.trusted_proxies)


def forwarded_client(peer: str, forwarded_for: list[str], trusted_proxies: list[str]) -> str:
    """The right-most address of X-Forwarded-For that is not a trusted proxy (each proxy appends its own peer).

    Everything left of it was written by the client and proves nothing. If every hop is a trusted proxy, the
    left-most one is the client.
    """
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            client = str(parse_address(hop))
        except ValueError:
            raise InvalidInput(
                f"the X-Forwarded-For header from proxy {peer} holds {hop[:64]!r}, which is not an IP address; "
                "check the proxy's configuration"
            ) from None
        if not address_in(client, trusted_proxies):
            break
    return client


def _normalised(host: str) -> str:
    """The canonical text of an address (IPv4-mapped IPv6 as IPv4); anything else as given, bounded."""
    try:
        return str(parse_address(host))
    except ValueError:
        return host[:64] or "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


def current_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    address: ClientAddress,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
) -> Principal:
    """The caller behind the bearer token: 401 without a valid one, 403 if refused, 429 after too many failures."""
    if "authorization" not in request.headers:
        raise AuthenticationRequired(f"no credentials; {_HOW_TO_AUTHENTICATE}")
    throttle: FailureThrottle = request.app.state.auth_throttle
    throttle.check(address)
    try:
        if credentials is None:  # another scheme, or no token after "Bearer"
            raise AuthenticationRequired(f"malformed Authorization header; {_HOW_TO_AUTHENTICATE}")
        return authenticate_token(
            session, credentials.credentials, address, entry_addresses=settings.ssh_entry_addresses
        )
    except AuthenticationRequired:
        throttle.failed(address)  # only "who are you?" counts: a valid token refused (403) guesses nothing
        raise


Authenticated = Annotated[Principal, Depends(current_principal)]


def administrator(principal: Authenticated, session: SessionDep, request: Request) -> Principal:
    """The caller, who must be an admin; anyone else is refused (and the refusal audited)."""
    if not principal.is_admin:
        reason = f"not an admin: {request.method} {request.url.path}"
        audit.record(session, "access.refused", actor=principal.username, address=principal.address, reason=reason)
        session.commit()
        raise PermissionDenied(f"{principal.username} is not an administrator; this is for the platform operators only")
    return principal


Administrator = Annotated[Principal, Depends(administrator)]


def count_registration(request: Request, address: ClientAddress) -> None:
    """Count a registration attempt from the caller's address, refusing it past the limit.

    Every attempt counts, accepted or not: nobody needs to register many accounts from one address.
    """
    throttle: FailureThrottle = request.app.state.registration_throttle
    try:
        throttle.check(address)
    except RateLimited as error:
        raise RateLimited(
            f"too many registrations from {address}; wait {error.retry_after} s before trying again",
            retry_after=error.retry_after,
        ) from None
    throttle.failed(address)
