"""Principals, permissions and rate limits: who may act, decided in one place."""
from .limits import Limits, limit_for, parse_limits
from .permissions import PERMISSIONS, PUBLIC, Owner, Scope, Verdict, decide, scope_of
from .principal import Principal, principal_of, tenant_of
from .tokens import InvalidToken, KeysUnavailable, TokenVerifier, mint

__all__ = ["Limits", "limit_for", "parse_limits", "PERMISSIONS", "PUBLIC", "Owner", "Scope", "Verdict", "decide",
           "scope_of", "Principal", "principal_of", "tenant_of", "InvalidToken", "KeysUnavailable", "TokenVerifier",
           "mint"]
