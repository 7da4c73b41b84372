"""Every invalid fixture is refused with exactly the errors written in its header."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.definition import ERROR_CODES, DefinitionInvalid, parse_definition, validate_definition

INVALID = Path(__file__).parent / "fixtures" / "invalid"
FIXTURES = sorted(p for p in INVALID.iterdir() if p.suffix in (".yaml", ".json"))

# schema.invalid is the fallback for a JSON Schema keyword without its own code; the
# schema uses none, so no definition can produce it.
UNREACHABLE = {"schema.invalid"}


def expectations(raw: bytes) -> set[tuple[str, str]]:
    expected = set()
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("# expect:"):
            code, _, path = line.removeprefix("# expect:").strip().partition(" ")
            expected.add((code, path))
    return expected


def document(path: Path) -> tuple[bytes, str]:
    raw = path.read_bytes()
    if path.suffix == ".json":
        lines = raw.split(b"\n")
        while lines and lines[0].startswith(b"#"):
            lines.pop(0)
        return b"\n".join(lines), "application/json"
    return raw, "application/yaml"


def test_there_are_enough_fixtures():
    assert len(FIXTURES) >= 70


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_reports_exactly_its_expected_errors(path: Path):
    expected = expectations(path.read_bytes())
    assert expected, f"{path.name} has no '# expect:' line"
    text, content_type = document(path)
    with pytest.raises(DefinitionInvalid) as caught:
        # The expression type checker has its own fixtures (tests/runtime/expressions).
        validate_definition(parse_definition(text, content_type), typecheck=False)
    errors = caught.value.errors
    got = {(e.code, e.path) for e in errors}
    report = "\n".join(f"  # expect: {e.code} {e.path}    ({e.message})" for e in errors)
    assert got == expected, f"{path.name} reported:\n{report}"
    assert all(e.message and e.code in ERROR_CODES for e in errors)


def test_every_code_has_a_fixture():
    covered = set()
    for path in FIXTURES:
        covered |= {code for code, _ in expectations(path.read_bytes())}
    assert set(ERROR_CODES) - UNREACHABLE - covered == set()
    assert covered - set(ERROR_CODES) == set()
