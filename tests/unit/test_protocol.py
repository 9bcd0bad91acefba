"""The callback protocol's answers (``dispatch.protocol``), in the shape of Celery 3.1's
test_http.py (success, failure, empty, non-JSON, unknown status)."""

from __future__ import annotations

import pytest

from dispatch import (
    InvalidResponseError,
    RemoteExecuteError,
    UnknownStatusError,
)
from dispatch.protocol import parse_answer


def test_success_answer_gives_retval():
    assert parse_answer(b'{"status": "success", "retval": 100}') == 100
    assert parse_answer(b'{"status": "success", "retval": {"a": [1, "\xc3\xa9"]}}') == {"a": [1, "é"]}
    assert parse_answer(b'{"status": "success"}') is None


def test_failure_answer_raises_with_its_reason():
    with pytest.raises(RemoteExecuteError) as caught:
        parse_answer(b'{"status": "failure", "reason": "Task failed"}')
    assert str(caught.value) == "Task failed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty response body"),
        (b"  \n", "empty response body"),
        (b"{{{{{{", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"success"', "not a JSON object"),
    ],
)
def test_malformed_answers_raise_invalid_response(body, message):
    with pytest.raises(InvalidResponseError, match=message) as caught:
        parse_answer(body)
    assert type(caught.value) is InvalidResponseError


def test_unknown_status_raises_unknown_status_error():
    with pytest.raises(UnknownStatusError, match="'worked'"):
        parse_answer(b'{"status": "worked"}')
    with pytest.raises(UnknownStatusError, match="None"):
        parse_answer(b"{}")
