"""Fixtures of the data API tests; the helpers themselves live in api_tenants.py (a module
with a name of its own: test folders share one import namespace, so `from conftest
import ...` would find another folder's conftest)."""

from api_tenants import api_tenant  # noqa: F401  (re-exported fixture)
