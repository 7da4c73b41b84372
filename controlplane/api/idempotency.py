"""`Idempotency-Key` on creating calls: the same key and body answer the first answer again.

The first request with a key holds a transaction-scoped advisory lock on (user, scope, key)
while it runs, so a concurrent repeat waits and then replays instead of creating twice.
Only successful answers are stored (an error may be retried with the same key); they are
stored encrypted, because they can carry keys shown once, and kept for 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone
from rest_framework.response import Response

from controlplane.api.errors import error_response
from tenants.crypto import decrypt, encrypt
from tenants.models import IdempotencyRecord

KEEP = timedelta(hours=24)


def idempotent(request, scope: str, create) -> Response:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return create()
    if not 1 <= len(key) <= 255:
        return error_response("invalid_idempotency_key", "Idempotency-Key is 1 to 255 characters.", 400)
    body_hash = hashlib.sha256(request.body or b"").hexdigest()
    lock_id = int.from_bytes(hashlib.sha256(f"{request.user.pk}:{scope}:{key}".encode()).digest()[:8], "big", signed=True)
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
        IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - KEEP).filter(
            user=request.user, scope=scope, key=key
        ).delete()
        record = IdempotencyRecord.objects.filter(user=request.user, scope=scope, key=key).first()
        if record is not None:
            if record.request_hash != body_hash:
                return error_response(
                    "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request body.",
                    422,
                )
            response = Response(json.loads(decrypt(record.body)), status=record.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        response = create()
        if 200 <= response.status_code < 300:
            IdempotencyRecord.objects.create(
                user=request.user,
                scope=scope,
                key=key,
                request_hash=body_hash,
                status_code=response.status_code,
                body=encrypt(json.dumps(response.data).encode()),
            )
        return response
