"""Baseline views for `bench/data_api.py`: what a hand-written Django view and a Django REST
Framework view do for the same requests as the data API, on the same tenant table.

Served under `/_bench/` only when the settings turn them on (`PLINTH_BENCH_VIEWS=1`, never
in production): they read a tenant's rows for whichever owner the query string names,
with no authentication at all, so they must never be reachable on a real platform.
"""
