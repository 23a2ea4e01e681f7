"""Every answer of every operation matches the published OpenAPI document (issue 10, item 3):
its status is declared on the operation, its content type is one declared for that status,
and an error body is valid against the schema declared for it.

Schemathesis generates requests (valid and invalid ones) for every operation from the app's
own document and sends them in-process, over the seeded city of tests/e2e/test_fuzz_api.py,
as a dispatcher and as a department user (who is refused more). Success bodies are typed
later (issue 11): their schemas are checked once every route has a response model; error
bodies are checked now. Bounded (a few examples per operation) and derandomized.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .test_fuzz_api import TOKENS, _fuzz, api_schema, city_app  # noqa: F401 (fixtures)

EXAMPLES = 4 * int(os.environ.get("CITYOPS_FUZZ_SCALE", "1"))


def error_schema_conformance(ctx: Any, response: Any, case: Any) -> bool | None:
    """The body of a refusal is valid against the schema declared for its status."""
    if response.status_code < 400:
        return None
    return response_schema_conformance(ctx, response, case)


CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          error_schema_conformance)


@pytest.mark.parametrize("role", ["dispatcher", "department-user"])
def test_every_answer_is_declared_in_the_document(api_schema: Any, role: str) -> None:  # noqa: F811
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 100  # every operation of the document, not a few
    failures = [failure for operation in operations
                if (failure := _fuzz(operation, TOKENS[role], CHECKS, EXAMPLES)) is not None]
    assert not failures, "\n\n".join(failures)
