"""Every expression of the example definitions type-checks, compiles, and runs.

The examples are loaded through the real definition loader (which itself calls
`typecheck_definition`), then every expression site is compiled the way the runtime will
compile it. The SQL is executed against an empty schema of the example's tables, so a
fragment that Postgres would refuse (a wrong type, a missing cast) fails here.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from psycopg import sql

from expr_db import SQL_TYPES
from runtime.expressions import compile_expression, expression_sites, typecheck_definition
from runtime.expressions.parse import parse

EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))


def load(path: Path):
    try:
        from runtime.definition import load_definition
    except ImportError as ex:  # pragma: no cover - the parser is written in parallel
        pytest.skip(f"runtime.definition.load_definition is not available yet: {ex}")
    return load_definition(path.read_text(encoding="utf-8"), "application/yaml")


def compile_site(definition, site):
    return compile_expression(definition, site.expr, site.scope, alias="r" if site.record_alias else None,
                              condition=site.role == "condition", expect=site.expect)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_type_checks_and_compiles(path):
    definition = load(path)
    assert typecheck_definition(definition) == []
    sites = expression_sites(definition)
    assert sites
    for site in sites:
        compiled = compile_site(definition, site)
        assert compiled.path == site.expr.path


def test_every_expression_of_the_shop_compiles_in_a_few_milliseconds():
    definition = load(next(p for p in EXAMPLES if p.stem == "shop"))
    parse.cache_clear()
    started = time.perf_counter()
    for site in expression_sites(definition):
        compile_site(definition, site)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    for site in expression_sites(definition):
        compile_site(definition, site)
    warm = time.perf_counter() - started
    # measured ~10 ms cold (parsing) and ~3 ms warm; the bounds leave room for slow CI
    assert cold < 0.25 and warm < 0.05, (cold, warm)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_expressions_run_in_postgres(pg, path):
    definition = load(path)
    conn, _ = pg
    schema = f"expr_ex_{uuid.uuid4().hex[:10]}"
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {}.{} (id uuid PRIMARY KEY, email text, role text)").format(
            sql.Identifier(schema), sql.Identifier("_users")))
        for entity in definition.entities.values():
            columns = [sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(
                SQL_TYPES[f.type])) for f in entity.fields.values()]
            conn.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(
                sql.Identifier(schema), sql.Identifier(entity.name), sql.SQL(", ").join(columns)))
    try:
        for site in expression_sites(definition):
            compiled = compile_site(definition, site)
            params = compiled.bind(auth={"id": uuid.uuid4(), "email": "a@b.c", "role": "staff"},
                                   input={}, bindings={}, event={"record": {"id": uuid.uuid4()}},
                                   secrets={"MAIL_KEY": "k", "LLM_KEY": "k"}, record=uuid.uuid4())
            if site.record_alias:
                entity = site.scope.record
                query = sql.SQL("SELECT {} FROM {} AS r").format(compiled.sql, sql.Identifier(entity))
            else:
                query = sql.SQL("SELECT {}").format(compiled.sql)
            with conn.transaction():
                conn.execute("SELECT set_config('search_path', %s, true)", [schema])
                conn.execute(query, params).fetchall()
    finally:
        with conn.transaction():
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
