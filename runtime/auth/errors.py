"""GoTrue's error shape, `{"code": <http status>, "error_code": "...", "msg": "..."}`.

auth-js and supabase-py read `error_code` (without the `X-Supabase-Api-Version` response
header they use this legacy shape) and `msg`; the class extends the data API's `ApiError`
so that the view wrapper in `runtime/api/views.py` answers it (`ApiError.response` renders
`body()`) like any other error.
"""

from __future__ import annotations

from runtime.api.errors import ApiError


class AuthError(ApiError):
    def __init__(self, status: int, error_code: str, msg: str, *, extra: dict | None = None,
                 headers: dict | None = None):
        super().__init__(status, error_code, msg, headers=headers)
        self.extra = extra or {}

    def body(self) -> dict:
        return {"code": self.status, "error_code": self.code, "msg": self.message, **self.extra}


def validation(msg: str, status: int = 400) -> AuthError:
    return AuthError(status, "validation_failed", msg)


def invalid_credentials() -> AuthError:
    # One answer for an unknown email and a wrong password: nothing tells which it was.
    return AuthError(400, "invalid_credentials", "Invalid login credentials")


def no_authorization() -> AuthError:
    return AuthError(401, "no_authorization", "This endpoint requires a Bearer token of a signed-in user.",
                     headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def not_admin() -> AuthError:
    return AuthError(403, "not_admin", "User not allowed: this endpoint needs the service key.")


def user_not_found() -> AuthError:
    return AuthError(404, "user_not_found", "User not found")


def email_exists(signup: bool = False) -> AuthError:
    if signup:
        return AuthError(422, "user_already_exists", "User already registered")
    return AuthError(422, "email_exists", "A user with this email address has already been registered")
