"""Password hashing and the password policy."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from server.storage import StorageError, WeakPasswordError
from server.storage.passwords import (
    MIN_PASSWORD_LENGTH,
    _dummy_hash,
    hash_password,
    needs_rehash,
    spend_verify_time,
    validate_new_password,
    verify_password,
)

PASSWORD = "correct horse battery staple"


def test_hash_is_argon2id_and_salted() -> None:
    first = hash_password(PASSWORD)
    assert first.startswith("$argon2id$")
    assert PASSWORD not in first
    assert hash_password(PASSWORD) != first


def test_verify_right_and_wrong_password() -> None:
    stored = hash_password(PASSWORD)
    assert verify_password(stored, PASSWORD) is True
    assert verify_password(stored, PASSWORD.upper()) is False
    assert verify_password(stored, "") is False


@pytest.mark.parametrize(
    "stored",
    ["", "garbage", "$argon2id$", "$argon2id$v=19$m=65536,t=3,p=4$", "$2b$12$bcryptlooking"],
)
def test_verify_never_raises_for_a_malformed_hash(stored: str) -> None:
    assert verify_password(stored, PASSWORD) is False


def test_needs_rehash() -> None:
    assert needs_rehash(hash_password(PASSWORD)) is False
    weaker = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weaker) is True
    assert needs_rehash("not a hash") is True


def test_dummy_hash_costs_what_a_real_hash_costs() -> None:
    # Unknown usernames are checked against it; other parameters would make them faster.
    assert not needs_rehash(_dummy_hash())
    spend_verify_time(PASSWORD)


@pytest.mark.parametrize("password", ["", "short", "x" * (MIN_PASSWORD_LENGTH - 1)])
def test_short_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPasswordError) as info:
        validate_new_password(password)
    assert str(info.value) == (
        f"The password is too short: use at least 12 characters (it has {len(password)})."
    )
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, StorageError)


def test_password_policy_edges() -> None:
    validate_new_password("x" * MIN_PASSWORD_LENGTH)
    validate_new_password("pässwört-ünïcödé")
    with pytest.raises(WeakPasswordError, match="spaces only"):
        validate_new_password(" " * 20)
    with pytest.raises(WeakPasswordError, match="too long"):
        validate_new_password("x" * 2000)
