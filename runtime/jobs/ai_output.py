"""What an `ai` step with declared `output` fields asks the model for, and how its answer
is checked: the instruction added to the system message, and `check_output`, which
reduces a JSON answer to the declared fields and names every problem with it.

Used by runtime/jobs/calls.py; the fields are the definition's (runtime.definition.model).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any, Mapping

from runtime.definition.model import DEFAULT_AUTH_ID, DEFAULT_NOW, EMAIL_PATTERN, URL_PATTERN, Field

NOT_JSON = object()   # what `parse_answer` answers for text that is no JSON


def parse_answer(content: str) -> Any:
    text = content.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.DOTALL | re.IGNORECASE)
    if fenced:  # some models wrap JSON in a Markdown fence even in JSON mode
        text = fenced.group(1)
    try:
        return json.loads(text)
    except ValueError:
        return NOT_JSON


def output_instruction(output: Mapping[str, Field]) -> str:
    """What the system message asks for when an ai step declares `output`."""
    lines = ["Answer with one JSON object and nothing else. Its keys:"]
    for name, f in output.items():
        line = f'- "{name}" ({"required" if f.required else "optional"}): {_describe(f)}'
        if f.description:
            line += f". {f.description}"
        lines.append(line)
    if any(not f.required for f in output.values()):
        lines.append("Use null for an optional key you cannot fill.")
    return "\n".join(lines)


def _describe(f: Field) -> str:
    t = f.type
    if t == "enum":
        return "one of " + ", ".join(json.dumps(v) for v in f.values)
    if t in ("string", "text", "email", "url"):
        what = {"string": "a string", "text": "a string", "email": "an email address", "url": "an http(s) URL"}[t]
        if f.min_length:
            what += f" of at least {f.min_length} characters"
        if f.max_length:
            what += f"{',' if f.min_length else ''} of at most {f.max_length} characters"
        if f.pattern:
            what += f" matching the regular expression {f.pattern}"
        return what
    if t in ("integer", "decimal", "float"):
        what = "an integer" if t == "integer" else "a number"
        if f.min is not None:
            what += f", at least {f.min}"
        if f.max is not None:
            what += f", at most {f.max}"
        return what
    return {
        "boolean": "true or false",
        "date": "a date, YYYY-MM-DD",
        "datetime": "a date and time in ISO 8601 with a time zone, like 2026-01-31T14:00:00Z",
        "uuid": "a UUID",
        "ref": "a UUID",
        "user": "a UUID",
        "json": "any JSON value",
    }.get(t, "a JSON value")


def check_output(output: Mapping[str, Field], answer: Any) -> tuple[dict, list[str]]:
    """The answer reduced to the declared fields (absent optional ones get their default or
    null), and every problem with it, each a sentence naming the field."""
    if answer is NOT_JSON:
        return {}, ["the model's answer is not valid JSON"]
    if not isinstance(answer, dict):
        return {}, ["the model's answer is not a JSON object"]
    checked: dict[str, Any] = {}
    problems: list[str] = []
    for name, f in output.items():
        value = answer.get(name)
        if value is None:
            if f.required:
                problems.append(f"the model's answer is missing '{name}'")
            checked[name] = _default(f)
            continue
        value, problem = _check_value(f, value)
        if problem:
            problems.append(f"'{name}' must be {problem}")
        checked[name] = value
    return checked, problems


def _default(f: Field) -> Any:
    if not f.has_default or f.default == DEFAULT_AUTH_ID:
        return None
    if f.default == DEFAULT_NOW:
        now = dt.datetime.now(dt.UTC)
        return now.date().isoformat() if f.type == "date" else now.isoformat()
    return f.default


def _check_value(f: Field, value: Any) -> tuple[Any, str | None]:
    """(the value, None) when it fits the field, else (value, what it must be)."""
    t = f.type
    if t == "json":
        return value, None
    if t == "boolean":
        return value, None if isinstance(value, bool) else "true or false"
    if t in ("integer", "decimal", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, "an integer" if t == "integer" else "a number"
        if t == "integer":
            if isinstance(value, float) and not value.is_integer():
                return value, "an integer"
            value = int(value)
        if f.min is not None and value < f.min:
            return value, f"at least {f.min}"
        if f.max is not None and value > f.max:
            return value, f"at most {f.max}"
        return value, None
    if not isinstance(value, str):
        return value, _describe(f)
    if t == "enum":
        return value, None if value in f.values else "one of " + ", ".join(f.values)
    if t in ("uuid", "ref", "user"):
        try:
            return str(uuid.UUID(value)), None
        except ValueError:
            return value, "a UUID"
    if t in ("date", "datetime"):
        try:
            if t == "date":
                dt.date.fromisoformat(value)
            else:
                dt.datetime.fromisoformat(value)
        except ValueError:
            return value, _describe(f)
        return value, None
    # string, text, email, url
    if f.max_length is not None and len(value) > f.max_length:
        return value, f"at most {f.max_length} characters"
    if f.min_length is not None and len(value) < f.min_length:
        return value, f"at least {f.min_length} characters"
    if t == "email" and not re.match(EMAIL_PATTERN, value, re.IGNORECASE):
        return value, "an email address"
    if t == "url" and not re.match(URL_PATTERN, value, re.IGNORECASE):
        return value, "an http(s) URL"
    if f.pattern and not re.search(f.pattern, value):
        return value, f"text matching {f.pattern}"
    return value, None
