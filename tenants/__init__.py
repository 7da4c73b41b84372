"""Who owns what: accounts, tenants, memberships and roles, keys, tokens, provisioning, audit."""
