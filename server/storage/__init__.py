"""Persistence for the server: users, login sessions and booths (SQLAlchemy 2 + Alembic).

Open the database with ``await Database.open(url)``; it migrates the schema to the newest
revision. The functions below each run one transaction on it.
"""

from __future__ import annotations

from .database import Database, migrate, open_database
from .errors import (
    DatabaseError,
    DuplicateError,
    InvalidValueError,
    NotFoundError,
    StorageError,
    WeakPasswordError,
)
from .models import AuthSession, Booth, Role, User
from .passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    validate_new_password,
    verify_password,
)
from .stores import (
    authenticate_booth,
    authenticate_user,
    create_auth_session,
    create_booth,
    create_user,
    delete_auth_session,
    get_booth,
    get_booth_by_name,
    get_user,
    get_user_by_username,
    list_booths,
    list_users,
    normalize_username,
    purge_expired_sessions,
    revoke_booth,
    set_password,
    set_user_disabled,
    user_for_token,
)

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "AuthSession",
    "Booth",
    "Database",
    "DatabaseError",
    "DuplicateError",
    "InvalidValueError",
    "NotFoundError",
    "Role",
    "StorageError",
    "User",
    "WeakPasswordError",
    "authenticate_booth",
    "authenticate_user",
    "create_auth_session",
    "create_booth",
    "create_user",
    "delete_auth_session",
    "get_booth",
    "get_booth_by_name",
    "get_user",
    "get_user_by_username",
    "hash_password",
    "list_booths",
    "list_users",
    "migrate",
    "needs_rehash",
    "normalize_username",
    "open_database",
    "purge_expired_sessions",
    "revoke_booth",
    "set_password",
    "set_user_disabled",
    "user_for_token",
    "validate_new_password",
    "verify_password",
]
