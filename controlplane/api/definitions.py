"""The definition language's JSON Schema, for editors and code-generating agents."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class DefinitionSchemaView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="JSON Schema of the definition language")
    def get(self, request):
        from runtime.definition import definition_json_schema

        return Response(definition_json_schema())
