"""Password rules and argon2id hashing (argon2-cffi's RFC 9106 defaults).

Hashes never leave this module's callers' SQL: they are neither logged nor answered.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from runtime.auth import config
from runtime.auth.errors import AuthError, validation

_hasher = PasswordHasher()


def check_rules(password) -> str:
    """The password if it follows the rules; else 422 weak_password (auth-js reads `reasons`)."""
    if not isinstance(password, str) or password == "":
        raise validation("A password is required.")
    minimum = config.get("DATA_AUTH_PASSWORD_MIN_LENGTH")
    if len(password) < minimum:
        raise AuthError(422, "weak_password", f"Password should be at least {minimum} characters.",
                        extra={"weak_password": {"reasons": ["length"]}})
    if len(password) > config.get("DATA_AUTH_PASSWORD_MAX_LENGTH"):
        raise validation(f"Password should be at most {config.get('DATA_AUTH_PASSWORD_MAX_LENGTH')} characters.",
                         status=422)
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    # Made with the same parameters as real hashes, so verifying against it costs the same.
    return hasher.hash("plinth-dummy-password-never-matches")


def verify(password_hash: str | None, password: str) -> bool:
    """True when `password` matches. With no hash (unknown email, or a user without a
    password), verify against a dummy hash anyway: the answer takes as long either way, so
    timing does not tell which emails exist."""
    if not password_hash:
        try:
            _hasher.verify(_dummy_hash(_hasher), password)
        except VerificationError:
            pass
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """After a successful login: the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
