"""Accounts and access: registration, operator decisions, allowed networks, tokens, SSH keys, projects, audit.

Services are plain functions taking an explicit session; each call that changes state is one transaction.
"""

from nephelae.accounts.access import Principal, authenticate_token, check_account_access, principal_for
from nephelae.accounts.registry import Registration

__all__ = ["Principal", "Registration", "authenticate_token", "check_account_access", "principal_for"]
