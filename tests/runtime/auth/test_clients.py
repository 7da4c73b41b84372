"""The real clients against a live server: supabase-py's `supabase_auth` and supabase-js's
`@supabase/auth-js`. Neither is a project dependency, so each part runs only when told
where the client is:

    PLINTH_SUPABASE_PY=/path/to/python-with-supabase_auth
    PLINTH_AUTH_JS=/path/to/node_modules           (holding @supabase/auth-js)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "clients"


def _run(command: list[str], env: dict | None = None) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.skipif(not os.environ.get("PLINTH_SUPABASE_PY"), reason="PLINTH_SUPABASE_PY not set")
def test_supabase_py(make_api, live_server):
    api = make_api("py-client")
    out = _run([os.environ["PLINTH_SUPABASE_PY"], str(HERE / "supabase_py_check.py"),
                f"{live_server.url}/t/{api.tenant.slug}", api.keys["anon"], api.keys["service"]])
    assert "supabase-py ok" in out


@pytest.mark.skipif(not os.environ.get("PLINTH_AUTH_JS") or not shutil.which("node"), reason="PLINTH_AUTH_JS not set")
def test_auth_js(make_api, live_server):
    api = make_api("js-client")
    out = _run(["node", str(HERE / "auth_js_check.mjs"), f"{live_server.url}/t/{api.tenant.slug}",
                api.keys["anon"], api.keys["service"]], env={"NODE_PATH": os.environ["PLINTH_AUTH_JS"]})
    assert "auth-js ok" in out
