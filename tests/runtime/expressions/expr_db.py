"""The test database: a throwaway schema holding the `expr_defs.shop()` tables and a few named rows.

The tables follow the platform's conventions (table = entity name, column = field name,
system columns id/created_at/updated_at, refs and users as uuid columns, `_users` for end
users) and are created from the test definition with plain DDL. Every query runs in its own
transaction that sets `search_path` (and the time zone) locally, as the runtime does.
Rows have fixed ids so that results (and array orders) are stable.
"""

from __future__ import annotations

import json
import os
import uuid
from decimal import Decimal

from psycopg import sql

from expr_defs import shop

DSN = os.environ.get("PLINTH_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")

SQL_TYPES = {
    "string": "varchar(255)", "text": "text", "email": "varchar(255)", "url": "varchar(255)",
    "enum": "text", "integer": "bigint", "decimal": "numeric", "float": "double precision",
    "boolean": "boolean", "date": "date", "datetime": "timestamptz", "json": "jsonb",
    "uuid": "uuid", "ref": "uuid", "user": "uuid",
}


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


# Named rows: users 1x, customers 2x, products 3x, orders 4x, lines 5x, memberships 6x.
IDS = {
    "alice": uid(11), "bob": uid(12), "carol": uid(13),
    "c_bob": uid(21), "c_none": uid(22), "c_carol": uid(23),
    "p_pen": uid(31), "p_ink": uid(32),
    "o_placed": uid(41), "o_paid": uid(42), "o_draft": uid(43), "o_carol": uid(44),
    "l1": uid(51), "l2": uid(52), "l3": uid(53),
}

ROWS = {
    "_users": [
        {"id": "alice", "email": "alice@example.com", "role": "staff"},
        {"id": "bob", "email": "bob@example.com", "role": "customer"},
        {"id": "carol", "email": "carol@shop.test", "role": "customer"},
    ],
    "Customer": [
        {"id": "c_bob", "account": "bob", "name": "Bob", "email": "bob@example.com",
         "credit_limit": Decimal(100), "tier": "gold", "score": 4.5,
         "meta": {"plan": "pro", "limits": {"max": 5}, "tags": ["a", "b"]}},
        {"id": "c_none", "account": None, "name": "Nobody", "email": "n@example.com",
         "credit_limit": Decimal(0), "tier": None, "meta": None},
        {"id": "c_carol", "account": "carol", "name": "Carol", "email": "carol@shop.test",
         "credit_limit": Decimal(10), "tier": "basic", "meta": {"plan": None}},
    ],
    "Product": [
        {"id": "p_pen", "sku": "PEN", "title": "Pen", "price": Decimal(10), "stock": 5},
        {"id": "p_ink", "sku": "INK", "title": "Ink", "price": Decimal("2.5"), "stock": 0},
    ],
    "Order": [
        {"id": "o_placed", "customer": "c_bob", "total": Decimal(30), "status": "placed",
         "note": "hello", "due": "2026-01-10", "placed_at": "-1 hour", "receipt_sent": False,
         "priority": 2, "weight": 1.5, "owner": "bob", "website": "https://shop.test"},
        {"id": "o_paid", "customer": "c_bob", "total": Decimal(20), "status": "paid",
         "receipt_sent": True},
        {"id": "o_draft", "customer": "c_none", "total": Decimal(0), "status": "draft",
         "note": "SHOUTING", "owner": "carol", "priority": 0},
        {"id": "o_carol", "customer": "c_carol", "total": Decimal(5), "status": "placed",
         "note": "Re: hi?", "placed_at": "-2 days", "priority": 1},
    ],
    "OrderLine": [
        {"id": "l1", "order": "o_placed", "product": "p_pen", "quantity": 2, "unit_price": Decimal(10)},
        {"id": "l2", "order": "o_placed", "product": "p_ink", "quantity": 4, "unit_price": Decimal("2.5")},
        {"id": "l3", "order": "o_carol", "product": "p_pen", "quantity": 1, "unit_price": Decimal(5)},
    ],
    "Membership": [
        {"id": uid(61), "user": "alice", "customer": "c_bob", "role": "admin"},
        {"id": uid(62), "user": "bob", "customer": "c_bob", "role": "member"},
        {"id": uid(63), "user": "carol", "customer": "c_carol", "role": "admin"},
    ],
}


def _value(column: str, value):
    if isinstance(value, str) and value in IDS:
        return IDS[value]
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def create_tables(cur, schema: str) -> None:
    cur.execute(sql.SQL("CREATE TABLE {}.{} (id uuid PRIMARY KEY, email text, role text)").format(
        sql.Identifier(schema), sql.Identifier("_users")))
    for entity in shop().entities.values():
        columns = [sql.SQL("id uuid PRIMARY KEY"),
                   sql.SQL("created_at timestamptz NOT NULL DEFAULT now()"),
                   sql.SQL("updated_at timestamptz NOT NULL DEFAULT now()")]
        for f in entity.fields.values():
            if not f.system:
                columns.append(sql.SQL("{} " + SQL_TYPES[f.type]).format(sql.Identifier(f.name)))
        cur.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(
            sql.Identifier(schema), sql.Identifier(entity.name), sql.SQL(", ").join(columns)))


def insert_rows(cur, schema: str) -> None:
    for table, rows in ROWS.items():
        for row in rows:
            names, values = [], []
            for column, value in row.items():
                names.append(sql.Identifier(column))
                if column == "placed_at":     # relative to the test run, for `now` comparisons
                    values.append(sql.SQL("now() + {}::interval").format(sql.Literal(value)))
                else:
                    values.append(sql.Literal(_value(column, value)))
            cur.execute(sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
                sql.Identifier(schema), sql.Identifier(table),
                sql.SQL(", ").join(names), sql.SQL(", ").join(values)))


def run(pg, query: sql.Composable, params: dict):
    """One transaction with the tenant's search_path set locally, as the runtime does."""
    conn, schema = pg
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', %s, true), set_config('TimeZone', 'UTC', true)",
                     [schema])
        return conn.execute(query, params).fetchone()[0]
