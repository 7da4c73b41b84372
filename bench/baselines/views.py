"""The baselines of `bench/data_api.py`, on the table `Todo` of the definition it pushes.

(1) `plain_*`: the least the data API must do for a request, written by hand: one
    transaction under the tenant's role (`runtime.db.tenant_transaction`: the same pool and
    the same `set_config` of search path, claims and role), around a hand-written WHERE
    whose JSON Postgres builds; the view answers Postgres's text as it is.
    `noswitch_*`: the same statements without the role switch, as the database owner on
    a pool of its own with the same settings, tables named with their schema: the
    difference is what isolation costs.
(2) `Drf*`: Django REST Framework's `ListAPIView` / `RetrieveAPIView` with a
    `ModelSerializer`, over an unmanaged model mapped to the tenant's table, through
    Django's default connection (no role switch).

None of them authenticates: the owner comes from the query string (`?owner=<uuid>`) and
the tenant from the URL. That is deliberate (a floor to compare with, not a service) and
is why these views are wired only when PLINTH_BENCH_VIEWS=1 outside production.
"""

from __future__ import annotations

import json
import threading

from django.db import connections, models
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from psycopg import sql
from psycopg_pool import ConnectionPool
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny

from runtime.db import tenant_transaction
from tenants.provisioning import schema_name

JSON = "application/json; charset=utf-8"
OBJECT_JSON = "application/vnd.pgrst.object+json; charset=utf-8"
# the columns of `Todo` in the order the data API answers them (`select=*`)
COLUMNS = ("id", "owner", "project", "title", "done", "due", "created_at", "updated_at")
LIST_LIMIT = 20
CAP = 100_000   # the definition's invariant: a project holds at most this many todos


# SQL, per schema (None: unqualified, the search path of the role switch decides) ----------

_statements: dict[str | None, dict[str, sql.Composed]] = {}
_statements_lock = threading.Lock()


def statements(schema: str | None) -> dict[str, str]:
    found = _statements.get(schema)
    if found is not None:
        return found

    def table(name: str) -> sql.Composable:
        return sql.Identifier(schema, name) if schema else sql.Identifier(name)

    cols = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
    todo, project, audit = table("Todo"), table("Project"), table("_audit")
    made = {
        "list": sql.SQL("SELECT coalesce(json_agg(t), '[]')::text FROM (SELECT {} FROM {} WHERE owner = %s "
                        "ORDER BY created_at DESC LIMIT {}) AS t").format(cols, todo, sql.Literal(LIST_LIMIT)),
        "get": sql.SQL("SELECT row_to_json(t)::text FROM (SELECT {} FROM {} WHERE owner = %s AND id = %s) AS t"
                       ).format(cols, todo),
        # an insert with what the data API keeps, by hand: the create rule on the project
        # (locked: it is the invariant's anchor), the check, the invariant, the audit row
        "lock": sql.SQL("SELECT 1 FROM {} WHERE id = %s AND owner = %s FOR UPDATE").format(project),
        "insert": sql.SQL("INSERT INTO {} AS r (owner, project, title) VALUES (%s, %s, %s) "
                          "RETURNING r.id::text, r.title <> upper(r.title), (to_jsonb(r) - '_search')::text"
                          ).format(todo),
        "cap": sql.SQL("SELECT count(*) <= {} FROM {} WHERE project = %s").format(sql.Literal(CAP), todo),
        "audit": sql.SQL("INSERT INTO {} (actor_kind, actor_id, entity, row_id, operation, changed, after) "
                         "VALUES ('user', %s, 'Todo', %s, 'insert', ARRAY['owner', 'project', 'title'], %s::jsonb)"
                         ).format(audit),
    }
    with _statements_lock:
        _statements[schema] = made
    return made


def _claims(owner: str) -> dict:
    return {"sub": owner, "role": "member", "email": ""}


# (1) with the role switch --------------------------------------------------------------


def plain_list(request, tenant_id: str):
    owner = request.GET["owner"]
    with tenant_transaction(tenant_id, _claims(owner)) as conn:
        body = conn.execute(statements(None)["list"], (owner,)).fetchone()[0]
    return HttpResponse(body, content_type=JSON)


def plain_get(request, tenant_id: str, pk):
    owner = request.GET["owner"]
    with tenant_transaction(tenant_id, _claims(owner)) as conn:
        row = conn.execute(statements(None)["get"], (owner, pk)).fetchone()
    if row is None:
        return HttpResponse(status=404)
    return HttpResponse(row[0], content_type=OBJECT_JSON)


@csrf_exempt
def plain_insert(request, tenant_id: str):
    owner = request.GET["owner"]
    body = json.loads(request.body)
    with tenant_transaction(tenant_id, _claims(owner)) as conn:
        return _insert(conn, statements(None), owner, body)


def _insert(conn, q: dict, owner: str, body: dict) -> HttpResponse:
    """Raising rolls the transaction back, as the data API does."""
    if conn.execute(q["lock"], (body["project"], owner)).fetchone() is None:
        raise PermissionError("not your project")
    row_id, check_ok, row = conn.execute(q["insert"], (owner, body["project"], body["title"])).fetchone()
    if not check_ok:
        raise ValueError("check failed")
    if not conn.execute(q["cap"], (body["project"],)).fetchone()[0]:
        raise ValueError("invariant failed")
    conn.execute(q["audit"], (owner, row_id, row))
    return HttpResponse(status=201)


# (1) without the role switch -------------------------------------------------------------

_owner_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()


def owner_pool() -> ConnectionPool:
    """The database owner's connections, with the runtime pool's settings."""
    global _owner_pool
    if _owner_pool is None:
        with _pool_lock:
            if _owner_pool is None:
                from django.conf import settings

                db = connections["default"].settings_dict
                params = {"dbname": db["NAME"], "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"],
                          "port": db["PORT"], "application_name": "plinth-bench-owner", "options": "-c TimeZone=UTC"}
                conninfo = " ".join(f"{k}='{v}'" for k, v in params.items() if v)
                _owner_pool = ConnectionPool(conninfo, min_size=1, max_size=int(getattr(settings, "RUNTIME_POOL_SIZE", 10)),
                                             open=True, name="plinth-bench-owner", kwargs={"autocommit": False})
    return _owner_pool


def noswitch_list(request, tenant_id: str):
    owner = request.GET["owner"]
    with owner_pool().connection() as conn, conn.transaction():
        body = conn.execute(statements(schema_name(tenant_id))["list"], (owner,)).fetchone()[0]
    return HttpResponse(body, content_type=JSON)


def noswitch_get(request, tenant_id: str, pk):
    owner = request.GET["owner"]
    with owner_pool().connection() as conn, conn.transaction():
        row = conn.execute(statements(schema_name(tenant_id))["get"], (owner, pk)).fetchone()
    if row is None:
        return HttpResponse(status=404)
    return HttpResponse(row[0], content_type=OBJECT_JSON)


@csrf_exempt
def noswitch_insert(request, tenant_id: str):
    owner = request.GET["owner"]
    body = json.loads(request.body)
    with owner_pool().connection() as conn, conn.transaction():
        return _insert(conn, statements(schema_name(tenant_id)), owner, body)


# (2) Django REST Framework -----------------------------------------------------------------

_models: dict[str, tuple[type, type]] = {}
_models_lock = threading.Lock()


def todo_model(schema: str) -> tuple[type, type]:
    """An unmanaged model on `<schema>."Todo"`, and its ModelSerializer (made once per schema)."""
    found = _models.get(schema)
    if found is not None:
        return found
    with _models_lock:
        found = _models.get(schema)
        if found is None:
            meta = type("Meta", (), {"managed": False, "app_label": "bench_baselines",
                                     # Django quotes it as "<schema>"."Todo"
                                     "db_table": f'{schema}"."Todo'})
            model = type(f"Todo_{schema}", (models.Model,), {
                "__module__": __name__,
                "Meta": meta,
                "id": models.UUIDField(primary_key=True),
                "owner": models.UUIDField(),
                "project": models.UUIDField(),
                "title": models.CharField(max_length=200),
                "done": models.BooleanField(),
                "due": models.DateField(null=True),
                "created_at": models.DateTimeField(),
                "updated_at": models.DateTimeField(),
            })
            serializer = type(f"TodoSerializer_{schema}", (serializers.ModelSerializer,), {
                "Meta": type("Meta", (), {"model": model, "fields": list(COLUMNS)}),
            })
            found = _models[schema] = (model, serializer)
    return found


class _DrfTodos:
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def _model(self):
        return todo_model(schema_name(self.kwargs["tenant_id"]))

    def get_serializer_class(self):
        return self._model()[1]

    def owned(self):
        return self._model()[0].objects.filter(owner=self.request.query_params["owner"])


class DrfList(_DrfTodos, generics.ListAPIView):
    def get_queryset(self):
        return self.owned().order_by("-created_at")[:LIST_LIMIT]


class DrfGet(_DrfTodos, generics.RetrieveAPIView):
    def get_queryset(self):
        return self.owned()
