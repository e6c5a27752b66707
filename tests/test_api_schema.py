"""Schemathesis against /api/v1/openapi.json: what the API answers matches what its description promises.

Every operation is called with generated valid and invalid requests (a bounded, derandomized
number of examples, so the run is repeatable and takes seconds) straight through the WSGI app,
and every answer is checked: no 5xx, documented status codes and content types, bodies that
match their schemas, and invalid values refused.
"""
from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks
from sqlalchemy import select

from ivr.models import User
from ivr.services.api_tokens import create_token
from tests.console_data import seed_committed

EXAMPLES = 25  # per operation and mode: 11 operations x 2 modes in about ten seconds
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]
# Not positive_data_acceptance: a request valid by the schema may still name a topic of the other line,
# a unit that does not exist or a kind the line does not take; those are the documented 400s.
# Unknown extra query arguments are not generated as "invalid" (this API, like most, ignores them), nor
# requests without the bearer token (the token is the harness's; the permission tests cover 401).


def _bearer(session_factory: Any, make_user: Any, role: str) -> dict[str, str]:
    name, _ = make_user(role)
    with session_factory() as session:
        user_id = session.scalars(select(User.id).where(User.username == name)).one()
        plain = create_token(session, user_id, "schemathesis")[1]
        session.commit()
    return {"Authorization": f"Bearer {plain}"}


def _check(operation: Any, headers: dict[str, str], mode: GenerationMode) -> None:
    """Generate requests for one operation in one mode; the first disagreement fails the test with a curl line."""

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # an operation with no parameter and no body: nothing to make invalid


def test_api_answers_match_its_openapi_description(app, session_factory, make_user) -> None:
    seed_committed(session_factory)
    app.extensions["ivr_limiter"].enabled = False
    headers = _bearer(session_factory, make_user, "supervisor")  # a role every operation allows
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _check(operation, headers, mode)


@pytest.mark.parametrize(("method", "url"), [("DELETE", "/api/v1/topics"), ("PUT", "/api/v1/messages/1/claim")])
def test_api_wrong_method_is_a_json_405_with_allow(client, method: str, url: str) -> None:
    resp = client.open(url, method=method)
    assert resp.status_code == 405 and resp.get_json()["status"] == 405
    assert set(resp.headers["Allow"].split(", ")) >= ({"GET"} if method == "DELETE" else {"POST"})
