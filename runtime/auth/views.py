"""The end-user endpoints of `/t/<slug>/auth/v1/`: sign-up, the password and refresh-token
grants, the signed-in user, logout; `admin/...` is in `runtime.auth.admin`.

`runtime/api/views.py` calls `handle` after `authenticate` checked the apikey and, when a
user's bearer token came along, verified it (so `context.caller` is that user).
"""

from __future__ import annotations

import structlog

from runtime.api.context import RequestContext
from runtime.auth import admin, passwords, ratelimit, sessions, tokens, users
from runtime.auth.errors import AuthError, email_exists, invalid_credentials, no_authorization, not_admin, validation
from runtime.auth.policy import policy_of
from runtime.auth.responses import dispatch, json_response, no_content, session_id_of
from runtime.auth.shapes import body_of, email_of, merged, metadata_of, session_json, user_json
from runtime.db import tenant_transaction

log = structlog.get_logger("plinth.auth")

MAX_REFRESH_TOKEN_LENGTH = 256


def handle(request, context: RequestContext, path: str):
    path = path.strip("/")
    if path == "admin" or path.startswith("admin/"):
        return admin.handle(request, context, path.removeprefix("admin").strip("/"))
    table = ROUTES.get(path)
    if table is None:
        raise AuthError(404, "not_found", f"No auth endpoint at /auth/v1/{path}.")
    return dispatch(request, table, context)


def _session(context: RequestContext, user: dict, refresh_token: str, session_id: str) -> dict:
    access, expires_in, expires_at = tokens.access_token(
        context.tenant, user_id=str(user["id"]), email=user["email"], role=user["role"], session_id=session_id)
    return session_json(access_token=access, expires_in=expires_in, expires_at=expires_at,
                        refresh_token=refresh_token, user=user)


# -- sign-up and sign-in ----------------------------------------------------------------

def signup(request, context: RequestContext):
    """POST signup {email, password, data?}: a new user with the definition's default role,
    signed in at once (Plinth sends no confirmation mail)."""
    policy = policy_of(context)
    if not policy.signup_open:
        raise AuthError(422, "signup_disabled",
                        "Signups not allowed for this backend: users are created with the service key.")
    body = body_of(request)
    email = email_of(body.get("email"))
    password = passwords.check_rules(body.get("password"))
    user_metadata = metadata_of(body.get("data"), "data") or {}
    address = ratelimit.client_address(request)
    ratelimit.check_signup(context.tenant.id, address)
    password_hash = passwords.hash_password(password)  # slow: before taking a connection
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        try:
            user = users.create(conn, email=email, role=policy.default_role, password_hash=password_hash,
                                app_metadata={}, user_metadata=user_metadata, signed_in=True)
        except users.EmailTaken:
            raise email_exists(signup=True)
        refresh, session_id = sessions.start(conn, user["id"])
    ratelimit.signed_up(context.tenant.id, address)
    log.info("auth.signup", user_id=str(user["id"]), role=user["role"])
    return json_response(_session(context, user, refresh, session_id))


def token(request, context: RequestContext):
    """POST token?grant_type=password|refresh_token."""
    grant = request.GET.get("grant_type")
    if grant == "password":
        return _password_grant(request, context)
    if grant == "refresh_token":
        return _refresh_grant(request, context)
    raise validation("unsupported_grant_type: use grant_type=password or grant_type=refresh_token")


def _password_grant(request, context: RequestContext):
    policy_of(context)  # no definition, no users table: say so rather than fail in SQL
    address = ratelimit.client_address(request)
    ratelimit.check_login(context.tenant.id, address)
    body = body_of(request)
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not email.strip():
        if body.get("phone"):
            raise validation("Phone sign-in is not supported: sign in with an email.")
        raise validation("An email address is required.")
    if not isinstance(password, str) or not password:
        raise validation("A password is required.")
    claims = context.caller.db_claims()
    with tenant_transaction(context.tenant.id, claims) as conn:
        found = users.by_email(conn, email.strip().lower())
    # verified outside the transaction: argon2 is slow and a pooled connection is precious
    stored_hash = found["password_hash"] if found else None
    if not passwords.verify(stored_hash, password):
        ratelimit.login_failed(context.tenant.id, address)
        log.info("auth.login_failed", address=address)
        raise invalid_credentials()
    rehash = passwords.hash_password(password) if passwords.needs_rehash(stored_hash) else None
    with tenant_transaction(context.tenant.id, claims) as conn:
        if rehash:
            users.set_password_hash(conn, found["id"], rehash)
        user = users.signed_in(conn, found["id"])
        if user is None:  # deleted between the two transactions
            raise invalid_credentials()
        refresh, session_id = sessions.start(conn, user["id"])
    log.info("auth.login", user_id=str(user["id"]))
    return json_response(_session(context, user, refresh, session_id))


def _refresh_grant(request, context: RequestContext):
    policy_of(context)
    presented = body_of(request).get("refresh_token")
    if not isinstance(presented, str) or not presented or len(presented) > MAX_REFRESH_TOKEN_LENGTH:
        raise validation("A refresh_token is required.")
    user = None
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        used = sessions.use(conn, presented)
        if used is not None and not used.reused:
            user = users.by_id(conn, used.user_id)
            if user is not None:
                refresh, session_id = sessions.start(conn, used.user_id, used.session_id)
    # raised after the commit: a replay's revocation of its family must stick
    if used is not None and used.reused:
        log.warning("auth.refresh_token_reused", user_id=used.user_id, session_id=used.session_id)
        raise AuthError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
    if used is None or user is None:
        raise AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
    return json_response(_session(context, user, refresh, session_id))


# -- the signed-in user -----------------------------------------------------------------

def _user_id(context: RequestContext) -> str:
    if context.caller.user_id is None:
        raise no_authorization()
    return context.caller.user_id


def _current(conn, context: RequestContext, *, lock: bool = False) -> dict:
    """The caller's row, refusing tokens of a logged-out session or a deleted user."""
    session_id = session_id_of(context)
    if session_id is not None and not sessions.alive(conn, session_id):
        raise AuthError(403, "session_not_found", "Session from session_id claim in JWT does not exist")
    user = users.by_id(conn, _user_id(context), lock=lock)
    if user is None:
        raise AuthError(403, "user_not_found", "User from sub claim in JWT does not exist")
    return user


def get_user(request, context: RequestContext):
    _user_id(context)
    policy_of(context)
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        user = _current(conn, context)
    return json_response(user_json(user))


def update_user(request, context: RequestContext):
    """PUT user {password?, data?, email?}: one's own password, metadata and email; never
    the role or app_metadata (403 not_admin: the service key does that)."""
    _user_id(context)
    policy_of(context)
    body = body_of(request)
    if body.get("app_metadata") is not None or body.get("role") is not None:
        raise not_admin()
    email = email_of(body["email"]) if body.get("email") is not None else None
    password = passwords.check_rules(body["password"]) if body.get("password") is not None else None
    user_metadata = metadata_of(body.get("data"), "data")
    new_hash = passwords.hash_password(password) if password is not None else None
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        user = _current(conn, context, lock=True)
        changes: dict = {}
        if email is not None and email != user["email"]:
            changes["email"] = email
        if password is not None:
            if passwords.verify(users.password_hash_of(conn, user["id"]), password):
                raise AuthError(422, "same_password", "New password should be different from the old password.")
            changes["password_hash"] = new_hash
        if user_metadata is not None:
            changes["user_metadata"] = merged(user["user_metadata"] or {}, user_metadata)
        try:
            user = users.update(conn, user["id"], changes)
        except users.EmailTaken:
            raise email_exists()
        if password is not None:
            # a new password ends every other session: a thief's refresh token stops working
            sessions.revoke_user(conn, user["id"], keep_session=session_id_of(context))
    return json_response(user_json(user))


def logout(request, context: RequestContext):
    """POST logout?scope=global|local|others: revoke refresh tokens; answers 204. Access
    tokens already issued stay valid until they expire (at most an hour), as in Supabase;
    `GET user` refuses them at once."""
    user_id = _user_id(context)
    policy_of(context)
    scope = request.GET.get("scope", "global")
    if scope not in ("global", "local", "others"):
        raise validation("scope must be global, local or others")
    session_id = session_id_of(context)
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        if scope == "global":
            sessions.revoke_user(conn, user_id)
        elif scope == "local" and session_id:
            sessions.revoke_session(conn, session_id)
        elif scope == "others":
            sessions.revoke_user(conn, user_id, keep_session=session_id)
    log.info("auth.logout", user_id=user_id, scope=scope)
    return no_content()


ROUTES = {
    "signup": {"POST": signup},
    "token": {"POST": token},
    "user": {"GET": get_user, "PUT": update_user},
    "logout": {"POST": logout},
}
