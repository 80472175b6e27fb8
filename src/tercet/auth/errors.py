"""Errors raised by authentication providers (caller misuse, never sent to a peer)."""

from __future__ import annotations

__all__ = ["AuthError", "UserExists", "UserNotFound"]


class AuthError(Exception):
    """Base class of the provider errors below."""


class UserExists(AuthError):
    """``create_user`` for a username that already has an account."""

    def __init__(self, username: str) -> None:
        super().__init__(f"user {username!r} already exists")
        self.username = username


class UserNotFound(AuthError):
    """An operation on an account that does not exist."""

    def __init__(self, username: str) -> None:
        super().__init__(f"user {username!r} does not exist")
        self.username = username
