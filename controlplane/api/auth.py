"""Accounts for CLIs and platforms: sign up, trade email and password for a token, list and
revoke one's tokens. Sign-up and token are rate-limited per address."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from controlplane.api.access import actor_of, client_ip
from controlplane.api.errors import error_response
from tenants import services
from tenants.models import PersonalAccessToken


class Credentials(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)
    token_name = serializers.CharField(max_length=100, required=False, default="api")


TokenOut = inline_serializer(
    "NewToken",
    {"token": serializers.CharField(), "id": serializers.IntegerField(), "email": serializers.CharField()},
)


def _new_token_response(request, user, name: str) -> Response:
    token, raw = services.token_create(user=user, name=name, actor=services.Actor(user, client_ip(request)))
    return Response({"token": raw, "id": token.pk, "email": user.email}, status=status.HTTP_201_CREATED)


class SignupView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(request=Credentials, responses={201: TokenOut}, summary="Create an account and answer a token")
    def post(self, request):
        data = Credentials(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_signup(
            email=data.validated_data["email"], password=data.validated_data["password"], actor_ip=client_ip(request)
        )
        return _new_token_response(request, user, data.validated_data["token_name"])


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(request=Credentials, responses={201: TokenOut}, summary="Email and password in, a new token out")
    def post(self, request):
        data = Credentials(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request, username=data.validated_data["email"].strip().lower(), password=data.validated_data["password"]
        )
        if user is None:
            return error_response("invalid_credentials", "Email or password is wrong.", status.HTTP_401_UNAUTHORIZED)
        return _new_token_response(request, user, data.validated_data["token_name"])


class TokenOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = PersonalAccessToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


class TokenListView(APIView):
    @extend_schema(responses=TokenOutSerializer(many=True), summary="Your tokens (never their values)")
    def get(self, request):
        return Response(TokenOutSerializer(request.user.tokens.all(), many=True).data)


class TokenDetailView(APIView):
    @extend_schema(responses={204: None}, summary="Revoke one of your tokens")
    def delete(self, request, token_id: int):
        services.token_revoke(user=request.user, token_id=token_id, actor=actor_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
