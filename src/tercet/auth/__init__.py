"""Authentication providers: who has an account and how to check its credentials.

Every provider implements :class:`AuthProvider`; the internal one keeps salted SCRAM
keys in a keyval store. Others (anonymous, external) plug in behind the same protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tercet.auth.errors import AuthError, UserExists, UserNotFound
from tercet.auth.internal import SCRAM_HASHES, InternalHashedProvider

if TYPE_CHECKING:
    from tercet.protocol.sasl.scram import AccountCredentials

__all__ = [
    "SCRAM_HASHES",
    "AuthError",
    "AuthProvider",
    "InternalHashedProvider",
    "UserExists",
    "UserNotFound",
]


@runtime_checkable
class AuthProvider(Protocol):
    """What the SASL, registration and admin code expect of an account provider.

    Usernames are nodeprep'd localparts. Operations on a missing account raise
    :class:`UserNotFound`, except the queries ``user_exists``, ``get_credentials``
    and ``test_password``, which answer False/None.
    """

    async def create_user(self, username: str, password: str) -> None:
        """Create an account; raise :class:`UserExists` if it exists."""
        ...

    async def set_password(self, username: str, password: str) -> None: ...

    async def delete_user(self, username: str) -> None:
        """Delete the account record only; the StorageManager deletes the user's data."""
        ...

    async def user_exists(self, username: str) -> bool: ...

    async def get_credentials(self, username: str) -> AccountCredentials | None: ...

    async def test_password(self, username: str, password: str) -> bool:
        """False for unknown or disabled accounts and for a wrong password."""
        ...

    async def users(self) -> list[str]: ...

    async def set_disabled(self, username: str, disabled: bool) -> None: ...

    async def is_disabled(self, username: str) -> bool: ...
