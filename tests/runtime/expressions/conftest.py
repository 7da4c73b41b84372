"""The `pg` fixture: a throwaway schema with the test tables and rows (see expr_db.py)."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from expr_db import DSN, create_tables, insert_rows


@pytest.fixture(scope="session")
def pg():
    """(connection, schema name): the schema is dropped when the session ends."""
    try:
        conn = psycopg.connect(DSN, connect_timeout=3)
    except psycopg.OperationalError as ex:
        pytest.skip(f"no PostgreSQL at {DSN}: {ex}")
    schema = f"expr_test_{uuid.uuid4().hex[:10]}"
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        create_tables(cur, schema)
        insert_rows(cur, schema)
    try:
        yield conn, schema
    finally:
        conn.rollback()
        with conn.transaction():
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.close()
