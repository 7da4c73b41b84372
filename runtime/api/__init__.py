"""The data API (`/t/<slug>/`): PostgREST's URL grammar and Supabase Auth's shapes over a
tenant's compiled definition. Stages, each in its own module:

resolve tenant (`context.py`) -> authenticate (`context.py`) -> load the CompiledBackend
(`backends.py`) -> parse the request (`grammar.py`) -> plan and build SQL (`read.py`,
`write.py`, `rpc.py`) -> execute under the tenant's role (`runtime/db.py`) -> respond.
Errors at any stage are `ApiError`s in PostgREST's shape (`errors.py`).
"""
