"""Push a definition to a tenant from the server's shell (the same service as the API).

    python manage.py plinth_push examples/shop.yaml --tenant shop [--dry-run] [--allow-destructive] [--as EMAIL]
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tenants.definitions import definition_push
from tenants.models import Tenant, User
from tenants.services import Actor


class Command(BaseCommand):
    help = "Push a definition (YAML or JSON file) to a tenant."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--allow-destructive", action="store_true")
        parser.add_argument("--as", dest="as_email", help="record this account as the author")

    def handle(self, *args, file, tenant, dry_run, allow_destructive, as_email, **options):
        target = Tenant.objects.filter(slug=tenant).first()
        if target is None:
            raise CommandError(f"no tenant '{tenant}'")
        author = User.objects.filter(email=as_email).first() if as_email else None
        if as_email and author is None:
            raise CommandError(f"no account '{as_email}'")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no file {file}")
        content_type = "application/json" if path.suffix.lower() == ".json" else "application/yaml"
        result = definition_push(
            tenant=target, source=path.read_bytes(), content_type=content_type,
            dry_run=dry_run, allow_destructive=allow_destructive, actor=Actor(author),
        )
        self.stdout.write(f"{result.status}" + (f" (version {result.version})" if result.version else ""))
        for change in result.plan:
            rows = f" ({change['rows_affected']} rows)" if change.get("rows_affected") is not None else ""
            self.stdout.write(f"  {change['label']:<12} {change['description']}{rows}")
        for error in result.errors:
            self.stdout.write(f"  {error['path'] or '(document)'}: {error['message']} [{error['code']}]")
        if result.status not in ("applied", "unchanged", "planned"):
            raise CommandError(f"push {result.status}")
