"""`/auth/v1/admin/users[/<id>]`, the service key's user management in Supabase Auth's
admin shapes (supabase-py `auth.admin.create_user`, `update_user_by_id`, `delete_user`,
`list_users`, `get_user_by_id`).

A user's role is `app_metadata.role` (GoTrue's top-level `role` is accepted too) and must
be `authenticated` or one of the definition's roles.
"""

from __future__ import annotations

from functools import partial

import psycopg
import structlog

from runtime.api.context import RequestContext
from runtime.api.errors import from_postgres
from runtime.api.integrity import WriteSession
from runtime.auth import config, passwords, sessions, users
from runtime.auth.errors import AuthError, email_exists, not_admin, user_not_found, validation
from runtime.auth.policy import AuthPolicy, policy_of
from runtime.auth.responses import dispatch, json_response, uuid_of
from runtime.auth.shapes import (
    AUDIENCE, app_metadata_to_store, body_of, email_of, merged, metadata_of, user_json,
)
from runtime.db import retried, tenant_transaction
from runtime.migrations.tables import USERS_TABLE

log = structlog.get_logger("plinth.auth")

MAX_PAGE_NUMBER = 1_000_000


def handle(request, context: RequestContext, path: str):
    # before routing: a caller without the service key learns nothing about admin paths
    if not context.caller.is_service:
        raise not_admin()
    parts = path.split("/") if path else []
    if parts == ["users"]:
        return dispatch(request, {"GET": list_users, "POST": create_user}, context)
    if len(parts) == 2 and parts[0] == "users":
        return dispatch(request, {"GET": get_user, "PUT": update_user, "DELETE": delete_user},
                        context, uuid_of(parts[1]))
    raise AuthError(404, "not_found", f"No auth endpoint at /auth/v1/admin/{path}.")


def _positive_int(request, name: str, default: int) -> int:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    # bounded above too: a huge page would overflow Postgres' OFFSET
    if not 1 <= value <= MAX_PAGE_NUMBER:
        raise validation(f"Bad Pagination Parameters: {name} must be an integer from 1 to {MAX_PAGE_NUMBER}")
    return value


def list_users(request, context: RequestContext):
    """GET admin/users?page=&per_page=: `{users, aud}`, newest first, with GoTrue's
    `X-Total-Count` and `Link` headers (supabase-js reads them for nextPage/lastPage)."""
    policy_of(context)
    page = _positive_int(request, "page", 1)
    per_page = min(_positive_int(request, "per_page", 50), config.get("DATA_AUTH_MAX_PER_PAGE"))
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        rows, total = users.page(conn, page=page, per_page=per_page)
    last = max(1, -(-total // per_page))
    links = []
    if page < last:
        links.append(f'<{request.path}?page={page + 1}&per_page={per_page}>; rel="next"')
    links.append(f'<{request.path}?page={last}&per_page={per_page}>; rel="last"')
    return json_response({"users": [user_json(r) for r in rows], "aud": AUDIENCE},
                         headers={"X-Total-Count": str(total), "Link": ", ".join(links)})


def _requested_role(body: dict, policy: AuthPolicy) -> str | None:
    """The role a body asks for (app_metadata.role, or GoTrue's top-level role), checked."""
    app_metadata = metadata_of(body.get("app_metadata"), "app_metadata") or {}
    asked = [r for r in (app_metadata.get("role"), body.get("role")) if r is not None and r != ""]
    if len(asked) == 2 and asked[0] != asked[1]:
        raise validation("role and app_metadata.role disagree.", status=422)
    return policy.check_role(asked[0]) if asked else None


def _refuse_ban(body: dict) -> None:
    # Silently ignoring a ban would leave the user signed in; say it is not supported.
    if body.get("ban_duration") not in (None, "", "none"):
        raise validation("ban_duration is not supported: delete the user or change the password.", status=422)


def create_user(request, context: RequestContext):
    """POST admin/users {email, password?, email_confirm?, app_metadata?: {role}, user_metadata?}.
    Without a password the user cannot sign in until one is set. Emails are always
    confirmed (no mail is sent), so `email_confirm` changes nothing."""
    policy = policy_of(context)
    body = body_of(request)
    if body.get("phone") and not body.get("email"):
        raise validation("Only email users are supported.", status=422)
    email = email_of(body.get("email"))
    role = _requested_role(body, policy) or policy.default_role
    _refuse_ban(body)
    password = body.get("password")
    password_hash = passwords.hash_password(passwords.check_rules(password)) if password not in (None, "") else None
    app_metadata = app_metadata_to_store(metadata_of(body.get("app_metadata"), "app_metadata"))
    user_metadata = metadata_of(body.get("user_metadata"), "user_metadata") or {}
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        try:
            user = users.create(conn, email=email, role=role, password_hash=password_hash,
                                app_metadata=app_metadata, user_metadata=user_metadata, signed_in=False)
        except users.EmailTaken:
            raise email_exists()
    log.info("auth.admin_create_user", user_id=str(user["id"]), role=role)
    return json_response(user_json(user))


def get_user(request, context: RequestContext, user_id: str):
    policy_of(context)
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        user = users.by_id(conn, user_id)
    if user is None:
        raise user_not_found()
    return json_response(user_json(user))


def update_user(request, context: RequestContext, user_id: str):
    """PUT admin/users/<id>: email, password (ends every session of the user), role,
    app_metadata and user_metadata (merged: a null value removes a key)."""
    policy = policy_of(context)
    body = body_of(request)
    email = email_of(body["email"]) if body.get("email") not in (None, "") else None
    role = _requested_role(body, policy)
    _refuse_ban(body)
    password = body.get("password")
    password_hash = passwords.hash_password(passwords.check_rules(password)) if password is not None else None
    app_metadata = metadata_of(body.get("app_metadata"), "app_metadata")
    user_metadata = metadata_of(body.get("user_metadata"), "user_metadata")
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        user = users.by_id(conn, user_id, lock=True)
        if user is None:
            raise user_not_found()
        changes: dict = {}
        if email is not None and email != user["email"]:
            changes["email"] = email
        if role is not None:
            changes["role"] = role
        if password_hash is not None:
            changes["password_hash"] = password_hash
        if app_metadata is not None:
            changes["app_metadata"] = merged(user["app_metadata"] or {}, app_metadata_to_store(app_metadata))
        if user_metadata is not None:
            changes["user_metadata"] = merged(user["user_metadata"] or {}, user_metadata)
        try:
            user = users.update(conn, user_id, changes)
        except users.EmailTaken:
            raise email_exists()
        if password_hash is not None:
            sessions.revoke_user(conn, user_id)
    log.info("auth.admin_update_user", user_id=user_id, changed=sorted(k for k in changes if k != "password_hash")
             + (["password"] if password_hash else []))
    return json_response(user_json(user))


def delete_user(request, context: RequestContext, user_id: str):
    """DELETE admin/users/<id>: answers `{}` as GoTrue does (supabase-py parses the body).
    `should_soft_delete` is ignored: deletion is always for good."""
    policy_of(context)
    try:
        # run again if Postgres rolled it back for a deadlock with a concurrent write
        retried(partial(_delete_user, context, user_id))
    except psycopg.Error as exc:     # a `user` field with on_delete: restrict: 409
        raise from_postgres(exc) from None
    log.info("auth.admin_delete_user", user_id=user_id)
    return json_response({})


def _delete_user(context: RequestContext, user_id: str) -> None:
    with tenant_transaction(context.tenant.id, context.caller.db_claims()) as conn:
        # locked first: a row pointing at the user cannot be written meanwhile (its
        # reference check waits), so the database's own cascade finds only the rows followed
        if users.by_id(conn, user_id, lock=True) is None:
            raise user_not_found()
        if context.tenant.version is None:      # no definition: no rows point at users
            users.delete(conn, user_id)
            return
        # the rows whose `user` fields follow the user (on_delete) are written as any
        # write is: audited, their invariants evaluated
        session = WriteSession(conn, context.backend, context.caller)
        session.follow_deletion(USERS_TABLE, [user_id])
        users.delete(conn, user_id)
        session.finish()
    session.outbox.wake()
