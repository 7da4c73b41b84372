"""Fixtures of the job and workflow tests (the data API tests' tenant helpers, reused)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_tenants import api_tenant  # noqa: E402,F401  (re-exported fixture)
