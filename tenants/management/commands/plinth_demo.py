"""Make sure the demo account and the demo tenant exist, and answer their credentials.

Used by `make run`. The demo tenant serves examples/todo.yaml. Credentials are kept in PLINTH_DATA_DIR/demo.json (the platform keeps
only hashes); if that file is lost, or a token or key in it no longer works, new ones are
issued. Refuses to run in production.
"""

from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.definitions import definition_push, live_version
from tenants.keys import key_is_live
from tenants.models import Tenant, User
from tenants.tokens import token_lookup

DEMO_EMAIL = "demo@plinth.dev"
DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Ensure the demo account and tenant exist; print their credentials."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("The demo account is for development only.")
        store = settings.PLINTH_DATA_DIR / "demo.json"
        store.parent.mkdir(parents=True, exist_ok=True)
        saved = json.loads(store.read_text()) if store.exists() else {}

        user = User.objects.filter(email=DEMO_EMAIL).first()
        password = saved.get("password")
        if user is None or not password or not user.check_password(password):
            password = password or f"demo-{secrets.token_urlsafe(9)}"
            if user is None:
                user = User.objects.create_user(DEMO_EMAIL, password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
        actor = services.Actor(user)

        token = saved.get("token")
        found = token_lookup(token) if token else None
        if found is None or found.user_id != user.pk:
            _, token = services.token_create(user=user, name="make run", actor=actor)

        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        keys = saved.get("keys") or {}
        if tenant is None:
            tenant, keys = services.tenant_create(owner=user, name="Demo", slug=DEMO_SLUG, actor=actor)
        else:
            for kind in ("anon", "service"):
                if not key_is_live(tenant, keys.get(kind, "")):
                    keys[kind] = services.key_rotate(tenant=tenant, kind=kind, actor=actor)

        if live_version(tenant) is None:
            source = (settings.BASE_DIR / "examples" / "todo.yaml").read_bytes()
            definition_push(tenant=tenant, source=source, content_type="application/yaml", actor=actor)

        result = {"email": DEMO_EMAIL, "password": password, "token": token, "slug": tenant.slug, "keys": keys}
        store.write_text(json.dumps(result, indent=2))
        store.chmod(0o600)
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            for key, value in result.items():
                self.stdout.write(f"{key}: {value}")
