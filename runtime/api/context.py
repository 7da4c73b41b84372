"""The first stages of a data API request: resolve the tenant from the URL, authenticate
the caller from its `apikey` and `Authorization` headers, and load the compiled backend of
the live version.

Callers:
- no or unknown `apikey`: 401 (the key must belong to the tenant in the URL);
- `apikey` = the anon key, no bearer or the key again as bearer: role `anon`, `auth` null;
- anon key + `Authorization: Bearer <access token>` signed with the tenant's secret: the
  end user, role from the token (`authenticated` or an application role);
- the service key (as apikey, bearer, or both): role `service`, which skips access rules
  and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt
import psycopg
from django.db import DatabaseError, connection
from psycopg_pool import PoolTimeout

from controlplane.middleware import bind_tenant
from runtime.api.backends import backend_for
from runtime.api.errors import ApiError, not_found, unauthorized
from runtime.compile import CompiledBackend
from runtime.db import TenantChanged, check_guard, tenant_statement, tenant_transaction
from tenants.crypto import decrypt, sha256_hex
from tenants.models import ApiKey, Tenant

ACCESS_TOKEN_AUDIENCE = "authenticated"


@dataclass(frozen=True)
class TenantInfo:
    id: str
    slug: str
    status: str
    version: int | None
    secret: bytes = field(repr=False)

    @property
    def issuer(self) -> str:
        return f"plinth:{self.slug}"


@dataclass(frozen=True)
class Caller:
    role: str                        # anon | service | authenticated | an application role
    user_id: str | None = None
    email: str | None = None
    claims: dict = field(default_factory=dict)

    @property
    def is_service(self) -> bool:
        return self.role == "service"

    @property
    def auth(self) -> dict | None:
        """`auth` as expressions see it: null for anonymous callers (and the service key)."""
        if self.user_id is None:
            return None
        return {"id": self.user_id, "email": self.email, "role": self.role}

    def db_claims(self) -> dict:
        """What `request.jwt.claims` holds in the transaction (read by `auth.id` defaults)."""
        return {"sub": self.user_id or "", "role": self.role, "email": self.email or ""}


@dataclass
class RequestContext:
    tenant: TenantInfo
    caller: Caller
    _backend: CompiledBackend | None = None
    # the arguments of `plinth_api.tenant_guard` while the request runs on remembered facts
    # that no statement has checked yet (see "Remembered facts" below)
    guard: tuple | None = None

    # The first statement that carries the guard checks the facts the whole request was
    # planned on (as the lookup did when it ran before every request); once its message has
    # run, later statements of the request need it no more. Until then (no connection to be
    # had, say) it stays pending, and `confirm` checks it before the answer.

    def confirm(self) -> None:
        """`TenantChanged` unless the remembered facts hold or were checked already (by a
        statement of this request, or here). When they cannot be checked now (the runtime's
        pool is busy), the request is answered on a fresh lookup instead, as if they had
        changed."""
        if self.guard is not None:
            try:
                check_guard(self.guard)
            except PoolTimeout:
                raise TenantChanged() from None
            self.guard = None

    def transaction(self, deferred: bool = False):
        """`tenant_transaction` under this tenant's role, as this caller; `deferred`: its
        opening goes with the first statements (`DeferredOpening`). The guard counts as
        checked once it ran."""
        return tenant_transaction(self.tenant.id, self.caller.db_claims(), self.guard,
                                  deferred=deferred, on_open=self._guard_checked)

    def _guard_checked(self) -> None:
        self.guard = None

    def statement(self, query: str, params: dict) -> tuple | None:
        """`tenant_statement` (one message) under this tenant's role, as this caller."""
        row = tenant_statement(self.tenant.id, self.caller.db_claims(), query, params, self.guard)
        self._guard_checked()
        return row

    @property
    def backend(self) -> CompiledBackend:
        if self._backend is None:
            if self.tenant.version is None:
                raise ApiError(404, "PGRST205", f"Tenant '{self.tenant.slug}' has no definition yet.",
                               hint="Push a definition through the admin API or the console.")
            self._backend = backend_for(self.tenant.id, self.tenant.version)
        return self._backend


# The tenant, its live version and the presented key's kind in one statement: this runs on
# every request, so it is raw SQL (the ORM's version cost more than the read it guards),
# and it is never cached, so a push, a key rotation or a suspension counts at once.
_LOOKUP = (
    "SELECT t.id, t.slug, t.status, t.auth_secret,"
    " (SELECT max(v.number) FROM tenants_definitionversion v WHERE v.tenant_id = t.id),"
    " (SELECT k.kind FROM tenants_apikey k"
    "   WHERE k.tenant_id = t.id AND k.key_hash = %s AND k.revoked_at IS NULL)"
    " FROM tenants_tenant t WHERE t.slug = %s"
)
# ... and a prepared statement of each Django connection (made on first use): planning the
# lookup cost Postgres several times what running it does, on every request. (Django's
# connections bind parameters client-side and prepare nothing themselves.) Prepared
# statements outlive transactions, rollbacks included; one that is gone all the same
# (DISCARD ALL by a pooler, a changed table) is prepared again.
_LOOKUP_STATEMENT = "plinth_lookup"
_PREPARE_LOOKUP = f"PREPARE {_LOOKUP_STATEMENT} AS " + _LOOKUP.replace("%s", "$1", 1).replace("%s", "$2", 1)
_EXECUTE_LOOKUP = f"EXECUTE {_LOOKUP_STATEMENT}(%s, %s)"
_STALE_PREPARED = ("26000", "0A000")   # no such prepared statement; cached plan must not change result type
_secrets: dict[bytes, bytes] = {}


def _secret(ciphertext) -> bytes:
    """The tenant's signing secret, decrypted once per process and ciphertext."""
    ciphertext = bytes(ciphertext or b"")
    if not ciphertext:
        return b""
    plain = _secrets.get(ciphertext)
    if plain is None:
        if len(_secrets) > 4096:
            _secrets.clear()
        plain = _secrets[ciphertext] = decrypt(ciphertext)
    return plain


def _lookup_row(key_hash: str, slug: str) -> tuple | None:
    if connection.queries_logged:          # DEBUG: through Django's cursor, which records it
        with connection.cursor() as cur:
            return _run_lookup(cur, key_hash, slug)
    # Django's cursor wrapper costs more than the statement: the psycopg cursor, with
    # Django's checks and error bookkeeping kept
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        with connection.connection.cursor() as cur:
            return _run_lookup(cur, key_hash, slug)


def _run_lookup(cur, key_hash: str, slug: str) -> tuple | None:
    if getattr(connection, "_plinth_lookup_on", None) is not connection.connection:
        _prepare_lookup(cur)
    try:
        cur.execute(_EXECUTE_LOOKUP, [key_hash, slug])
    except (DatabaseError, psycopg.Error) as exc:
        if _stale(exc) and not connection.in_atomic_block:
            _prepare_lookup(cur)
            cur.execute(_EXECUTE_LOOKUP, [key_hash, slug])
        else:
            raise
    return cur.fetchone()


def _stale(exc: Exception) -> bool:
    """The prepared lookup is gone or outdated (Django's error, or psycopg's underneath)."""
    return getattr(exc, "sqlstate", None) in _STALE_PREPARED or \
        getattr(exc.__cause__, "sqlstate", None) in _STALE_PREPARED


def _prepare_lookup(cur) -> None:
    """(Re)make the lookup's prepared statement on this connection."""
    cur.execute(f"SELECT 1 FROM pg_prepared_statements WHERE name = '{_LOOKUP_STATEMENT}'")
    if cur.fetchone() is not None:
        cur.execute(f"DEALLOCATE {_LOOKUP_STATEMENT}")
    cur.execute(_PREPARE_LOOKUP)
    connection._plinth_lookup_on = connection.connection


def _key_hash(raw_key: str | None) -> str:
    return sha256_hex(raw_key) if raw_key and len(raw_key) <= 2000 else ""


def _lookup(slug: str, raw_key: str | None) -> tuple[TenantInfo, str | None]:
    key_hash = _key_hash(raw_key)
    row = _lookup_row(key_hash, slug)
    if row is None:
        raise not_found(f"No tenant '{slug}'.", code="PGRST000")
    tenant_id, slug, status, secret, live, kind = row
    if status != Tenant.Status.ACTIVE:
        raise ApiError(503, "PGRST002", f"Tenant '{slug}' is suspended.")
    tenant = TenantInfo(tenant_id, slug, status, live, _secret(secret))
    if kind is not None:      # a request without a live key is refused: nothing to remember
        _remember((slug, key_hash), Remembered(tenant, kind, (slug, key_hash, tenant_id, live, kind,
                                                              bytes(secret or b""))))
    bind_tenant(slug)
    return tenant, kind


# Remembered facts ------------------------------------------------------------------------
#
# The lookup above costs a round trip on a connection of its own before every request. A
# worker process remembers what it found for each (slug, key) instead, and the request's
# first statement checks it in the same message (`plinth_api.tenant_guard`, runtime/db.py):
# a push, a key rotation or revocation, a new signing secret or a suspension still counts
# from the next request on, as with the lookup, and a request planned on outdated facts
# runs nothing: it is looked up afresh and run again (`remembered_context`). A request that
# ends without a statement is checked on its own before it is answered (`confirm`).

@dataclass(frozen=True)
class Remembered:
    tenant: TenantInfo
    kind: str
    guard: tuple       # the arguments of `plinth_api.tenant_guard` that check these facts


_MAX_REMEMBERED = 10_000
_remembered: dict[tuple[str, str], Remembered] = {}


def _remember(key: tuple[str, str], facts: Remembered) -> None:
    if len(_remembered) >= _MAX_REMEMBERED:
        _remembered.clear()
    _remembered[key] = facts


def _remembered_key(request, slug: str) -> tuple[str, str]:
    try:
        raw = _lookup_key(request)
    except ApiError:      # a malformed Authorization header: nothing remembered, refused afresh
        raw = None
    return slug, _key_hash(raw)


def forget(request, slug: str) -> None:
    """Drop what this process remembers for the request's tenant and key."""
    _remembered.pop(_remembered_key(request, slug), None)


def remembered_context(request, slug: str) -> RequestContext | None:
    """The request's context on remembered facts, with the guard that checks them; None when
    this process has none for the tenant and key (`request_context` then looks them up)."""
    facts = _remembered.get(_remembered_key(request, slug))
    if facts is None:
        return None
    bind_tenant(slug)
    context = RequestContext(facts.tenant, Caller("anon"), guard=facts.guard)
    try:
        context.caller = authenticate(request, facts.tenant, facts.kind)
    except ApiError:
        context.confirm()     # a refusal on outdated facts (a new signing secret) is not one
        raise
    return context


def resolve_tenant(slug: str) -> TenantInfo:
    return _lookup(slug, None)[0]


def _bearer(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")   # META: cheaper than request.headers
    scheme, _, value = header.partition(" ")
    if header and scheme.lower() != "bearer":
        raise unauthorized("Authorization must be 'Bearer <token>'.")
    return value.strip() or None


def _key_kind(tenant: TenantInfo, raw: str | None) -> str | None:
    if not raw or len(raw) > 2000:
        return None
    return (
        ApiKey.objects.filter(tenant_id=tenant.id, key_hash=sha256_hex(raw), revoked_at__isnull=True)
        .values_list("kind", flat=True)
        .first()
    )


_verified: dict[tuple[bytes, str], dict] = {}


def verify_access_token(tenant: TenantInfo, token: str) -> dict:
    """The token's claims if it is valid for this tenant now. Verified tokens are remembered
    until they expire (a token cannot change; rotating the tenant's secret changes the key
    of this cache, so old tokens are verified again, and fail)."""
    key = (tenant.secret, token)
    claims = _verified.get(key)
    if claims is not None:
        if claims["exp"] > time.time():
            return claims
        _verified.pop(key, None)
    claims = _verify(tenant, token)
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[key] = claims
    return claims


def _verify(tenant: TenantInfo, token: str) -> dict:
    try:
        return jwt.decode(
            token, tenant.secret, algorithms=["HS256"], audience=ACCESS_TOKEN_AUDIENCE, issuer=tenant.issuer,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("JWT expired")
    except jwt.PyJWTError:
        raise unauthorized("The access token is not valid for this tenant.")


def issue_access_token(tenant: TenantInfo, *, user_id: str, email: str, role: str, lifetime: int = 3600,
                       extra: dict | None = None) -> tuple[str, int]:
    """`extra` adds claims (auth's `session_id`, ...); it cannot override the ones set here."""
    now = int(time.time())
    claims = {
        **(extra or {}),
        "iss": tenant.issuer, "aud": ACCESS_TOKEN_AUDIENCE, "sub": user_id, "email": email, "role": role,
        "iat": now, "exp": now + lifetime,
    }
    return jwt.encode(claims, tenant.secret, algorithm="HS256"), now + lifetime


def _presented_key(request) -> tuple[str | None, str | None]:
    """(apikey, bearer): the key comes as the `apikey` header (or query parameter); some
    clients send it only as the bearer, which then is the key and not a user."""
    apikey = request.META.get("HTTP_APIKEY") or request.GET.get("apikey")
    return apikey, _bearer(request)


def _lookup_key(request) -> str | None:
    """The key the tenant is looked up with: the apikey, else the bearer."""
    apikey, bearer = _presented_key(request)
    return apikey or bearer


def authenticate(request, tenant: TenantInfo, kind: str | None = None) -> Caller:
    apikey, bearer = _presented_key(request)
    if apikey:
        kind = kind or _key_kind(tenant, apikey)
        if kind is None:
            raise unauthorized("The apikey is not a live key of this tenant.", code="PGRST301")
    else:
        kind, bearer = kind or _key_kind(tenant, bearer), None
        if kind is None:
            raise unauthorized("No API key: send the tenant's anon or service key as the 'apikey' header.",
                               code="PGRST300")
    if kind == ApiKey.Kind.SERVICE:
        return Caller("service")
    if not bearer or bearer == apikey:
        return Caller("anon")
    try:
        claims = verify_access_token(tenant, bearer)
    except ApiError:
        # the anon key as apikey with the service key as bearer is the service key
        if _key_kind(tenant, bearer) == ApiKey.Kind.SERVICE:
            return Caller("service")
        raise
    return Caller(str(claims.get("role") or "authenticated"), str(claims["sub"]), claims.get("email"), claims)


def request_context(request, slug: str) -> RequestContext:
    tenant, kind = _lookup(slug, _lookup_key(request))
    return RequestContext(tenant, authenticate(request, tenant, kind))
