"""JSON answers for what would otherwise be Django's HTML error pages, under /api/."""

from django.http import JsonResponse


def not_found(request, *args, **kwargs):
    return JsonResponse({"code": "not_found", "message": f"No endpoint at {request.path}.", "errors": []}, status=404)


def server_error(request, *args, **kwargs):
    if not request.path.startswith(("/api/", "/t/")):
        from django.views.defaults import server_error as html_server_error

        return html_server_error(request)
    # The traceback is in the logs under this request id, never in the answer.
    return JsonResponse(
        {
            "code": "internal_error",
            "message": f"Something went wrong on our side (request {getattr(request, 'request_id', '?')}).",
            "errors": [],
        },
        status=500,
    )
