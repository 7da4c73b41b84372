"""End-user auth of the data API (`/t/<slug>/auth/v1/...`), shaped like Supabase Auth
(GoTrue) so that supabase-js and supabase-py auth calls work unchanged.

Modules, each small: `views` routes and answers the endpoints (`admin` the service-key
ones), `users` and `sessions` are the SQL on the tenant's `_users` and `_refresh_tokens`,
`passwords` hashes, `tokens` mints, `ratelimit` counts failures, `shapes` turns rows and
bodies into GoTrue's JSON, `responses` answers and dispatches, `errors` is GoTrue's error
shape, `policy` reads the definition's `auth` section, `config` the tunable settings.
"""
