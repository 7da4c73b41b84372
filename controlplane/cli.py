"""`plinth`: the command line for CI pipelines, talking to the admin API with a token.

    plinth push FILE --tenant SLUG [--dry-run] [--allow-destructive]

The server and token come from --url / --token or PLINTH_URL / PLINTH_TOKEN. Exit status:
0 applied, unchanged or planned; 1 invalid or failed; 2 destructive changes refused;
3 the request itself failed (network, authentication, unknown tenant).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

EXIT = {"applied": 0, "unchanged": 0, "planned": 0, "invalid": 1, "failed": 1, "destructive": 2}


def _print_plan(plan: list[dict], out) -> None:
    if not plan:
        print("  no schema changes", file=out)
    for change in plan:
        rows = f" ({change['rows_affected']} rows)" if change.get("rows_affected") is not None else ""
        print(f"  {change['label']:<12} {change['description']}{rows}", file=out)


def push(args) -> int:
    path = Path(args.file)
    try:
        body = path.read_bytes()
    except OSError as exc:
        print(f"plinth: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 3
    content_type = "application/json" if path.suffix.lower() == ".json" else "application/yaml"
    params = {"dry_run": str(args.dry_run).lower(), "allow_destructive": str(args.allow_destructive).lower()}
    url = f"{args.url.rstrip('/')}/api/v1/tenants/{args.tenant}/definition"
    try:
        response = httpx.post(
            url, content=body, params=params, timeout=120,
            headers={"Authorization": f"Bearer {args.token}", "Content-Type": content_type},
        )
    except httpx.HTTPError as exc:
        print(f"plinth: could not reach {args.url}: {exc}", file=sys.stderr)
        return 3
    try:
        answer = response.json()
    except ValueError:
        print(f"plinth: unexpected answer {response.status_code} from {url}", file=sys.stderr)
        return 3
    status = answer.get("status")
    if status not in EXIT:
        print(f"plinth: {answer.get('message', response.status_code)}", file=sys.stderr)
        return 3
    out = sys.stdout if EXIT[status] == 0 else sys.stderr
    headline = {
        "applied": f"applied {path.name} to {args.tenant} as version {answer.get('version')}",
        "unchanged": f"{args.tenant} already runs this definition (version {answer.get('version')})",
        "planned": f"dry run: {path.name} would change {args.tenant} like this (nothing was changed)",
        "invalid": f"{path.name} was refused; nothing was changed",
        "failed": f"the migration failed; nothing was changed",
        "destructive": "refused: the plan has destructive changes; push with --allow-destructive to apply them",
    }[status]
    print(headline, file=out)
    if answer.get("plan") or status in ("applied", "planned"):
        _print_plan(answer.get("plan", []), out)
    for error in answer.get("errors", []):
        where = error.get("path") or "(document)"
        print(f"  {where}: {error.get('message')} [{error.get('code')}]", file=out)
    return EXIT[status]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plinth", description="Plinth command line")
    parser.add_argument("--url", default=os.environ.get("PLINTH_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("PLINTH_TOKEN"), help="personal access token (or PLINTH_TOKEN)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("push", help="push a definition to a tenant")
    p.add_argument("file")
    p.add_argument("--tenant", required=True)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--allow-destructive", action="store_true")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is needed: --token or PLINTH_TOKEN")
    return push(args)


if __name__ == "__main__":
    sys.exit(main())
