from django.urls import path

from bench.baselines import views

urlpatterns = [
    # (1) one transaction under the tenant's role, hand-written SQL, JSON built by Postgres
    path("plain/<str:tenant_id>/todos", views.plain_list),
    path("plain/<str:tenant_id>/todos/<uuid:pk>", views.plain_get),
    path("plain/<str:tenant_id>/insert", views.plain_insert),
    # (1) without the role switch: the same statements as the database owner, schema-qualified
    path("noswitch/<str:tenant_id>/todos", views.noswitch_list),
    path("noswitch/<str:tenant_id>/todos/<uuid:pk>", views.noswitch_get),
    path("noswitch/<str:tenant_id>/insert", views.noswitch_insert),
    # (2) Django REST Framework generic views with a ModelSerializer
    path("drf/<str:tenant_id>/todos", views.DrfList.as_view()),
    path("drf/<str:tenant_id>/todos/<uuid:pk>", views.DrfGet.as_view()),
]
