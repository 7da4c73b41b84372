"""The last stage: a body Postgres already rendered as JSON text, with PostgREST's status
codes and headers (`Content-Range`, `Preference-Applied`, single-object answers).

>>> content_range(0, 20, 123)
'0-19/123'
>>> content_range(0, 0, 0), content_range(5, 0, None)
('*/0', '*/*')
>>> range_status(0, 20, 123), range_status(0, 3, 3), range_status(10, 0, 4)
(206, 200, 416)
"""

from __future__ import annotations

from django.http import HttpResponse

from runtime.api.errors import ApiError

JSON = "application/json; charset=utf-8"
OBJECT_JSON = "application/vnd.pgrst.object+json; charset=utf-8"


def content_range(offset: int, page: int, total: int | None) -> str:
    """`first-last/total`, `*` for an unknown total, `*/total` for an empty page."""
    total_text = "*" if total is None else str(total)
    if page <= 0:
        return f"*/{total_text}"
    return f"{offset}-{offset + page - 1}/{total_text}"


def range_status(offset: int, page: int, total: int | None) -> int:
    """PostgREST's: 416 past the end, 206 for a part of a known total, else 200."""
    if total is None:
        return 200
    if offset > total:
        return 416
    if page < total:
        return 206
    return 200


def not_one_row(rows: int) -> ApiError:
    return ApiError(406, "PGRST116", "JSON object requested, multiple (or no) rows returned",
                    f"The result contains {rows} rows")


def read_response(*, body: str | None, page: int, total: int | None, offset: int, single: bool, head: bool,
                  applied: str = "") -> HttpResponse:
    """A read's answer: the JSON array, or its one object for `single`; no body for HEAD."""
    if single:
        if page != 1:
            raise not_one_row(page)
        # json_agg of one row is "[<row>]": its object is the text between the brackets
        content = "" if head or body is None else body[1:-1]
        response = HttpResponse(content, content_type=OBJECT_JSON, status=200)
    else:
        status = range_status(offset, page, total)
        if status == 416:
            raise ApiError(416, "PGRST103", "Requested range not satisfiable",
                           f"An offset of {offset} was requested, but there are only {total} rows.",
                           headers={"Content-Range": f"*/{total}"})
        response = HttpResponse("" if head or body is None else body, content_type=JSON, status=status)
    response["Content-Range"] = content_range(offset, page, total)
    if applied:
        response["Preference-Applied"] = applied
    return response


def options_response(allow: str) -> HttpResponse:
    response = HttpResponse(b"", status=200)
    response["Allow"] = allow
    return response
