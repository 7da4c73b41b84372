"""The real clients against a live server: supabase-py's `supabase_auth` and supabase-js's
`@supabase/auth-js`. By default, the ones `make test` installs: this interpreter (the
`supabase` package is in requirements/dev.txt) and tests/clients/node_modules (`npm ci`
there); each part skips only when its client is missing. Others can be pointed at:

    PLINTH_SUPABASE_PY=/path/to/python-with-supabase_auth
    PLINTH_AUTH_JS=/path/to/node_modules           (holding @supabase/auth-js)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "clients"
INSTALLED_JS = Path(__file__).resolve().parents[2] / "clients" / "node_modules"
SUPABASE_PY = os.environ.get("PLINTH_SUPABASE_PY") or (
    sys.executable if importlib.util.find_spec("supabase_auth") else "")
AUTH_JS = os.environ.get("PLINTH_AUTH_JS") or (
    str(INSTALLED_JS) if (INSTALLED_JS / "@supabase" / "auth-js").is_dir() else "")


def _run(command: list[str], env: dict | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.skipif(not SUPABASE_PY, reason="supabase_auth not installed and PLINTH_SUPABASE_PY not set")
def test_supabase_py(make_api, platform_server):
    api = make_api("py-client")
    out = _run([SUPABASE_PY, str(HERE / "supabase_py_check.py"),
                f"{platform_server.url}/t/{api.tenant.slug}", api.keys["anon"], api.keys["service"]])
    assert "supabase-py ok" in out


@pytest.mark.skipif(not AUTH_JS or not shutil.which("node"),
                    reason="node, or @supabase/auth-js (npm ci in tests/clients, or PLINTH_AUTH_JS), missing")
def test_auth_js(make_api, platform_server):
    api = make_api("js-client")
    out = _run(["node", str(HERE / "auth_js_check.mjs"), f"{platform_server.url}/t/{api.tenant.slug}",
                api.keys["anon"], api.keys["service"]], env={"NODE_PATH": AUTH_JS})
    assert "auth-js ok" in out
