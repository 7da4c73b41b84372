"""Compiled backends, cached per (tenant, version) in each process, bounded in memory.

A push makes a new version; the next request in any process sees the new number (read
with the tenant on every request) and compiles that version once. Old versions fall out
of the cache by least recent use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from runtime.compile import CompiledBackend, compile_definition
from runtime.definition import validate_definition
from tenants.models import DefinitionVersion

MAX_BACKENDS = 256

_cache: OrderedDict[tuple[str, int], CompiledBackend] = OrderedDict()
_lock = threading.Lock()


def backend_for(tenant_id: str, version: int) -> CompiledBackend:
    key = (tenant_id, version)
    with _lock:
        backend = _cache.get(key)
        if backend is not None:
            _cache.move_to_end(key)
            return backend
    tree = DefinitionVersion.objects.values_list("definition", flat=True).get(tenant_id=tenant_id, number=version)
    backend = compile_definition(validate_definition(tree))
    with _lock:
        _cache[key] = backend
        _cache.move_to_end(key)
        while len(_cache) > MAX_BACKENDS:
            _cache.popitem(last=False)
    return backend


def cached_backends() -> int:
    return len(_cache)
