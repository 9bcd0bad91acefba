"""The error hierarchy (``dispatch.errors``) and errors stored by a worker coming back as the same class."""

from __future__ import annotations

from dispatch import (
    BadStatusError,
    ConfigurationError,
    DispatchError,
    InvalidResponseError,
    RemoteExecuteError,
    ResponseTooLargeError,
    TransportError,
    UnknownStatusError,
)
from dispatch.errors import error_from_result


def test_error_hierarchy_matches_the_contract():
    assert issubclass(InvalidResponseError, DispatchError)
    assert issubclass(UnknownStatusError, InvalidResponseError)
    assert issubclass(BadStatusError, InvalidResponseError)
    assert issubclass(ResponseTooLargeError, InvalidResponseError)
    assert issubclass(RemoteExecuteError, DispatchError)
    assert issubclass(TransportError, DispatchError)
    assert not issubclass(RemoteExecuteError, InvalidResponseError)
    assert issubclass(ConfigurationError, ValueError)


def test_stored_errors_come_back_as_the_same_class():
    for cls in (RemoteExecuteError, TransportError, UnknownStatusError, BadStatusError, InvalidResponseError):
        error = error_from_result(cls.__name__, "why")
        assert type(error) is cls and str(error) == "why"
    foreign = error_from_result("KeyError", "x")  # an actor's own exception: still one of ours for the caller
    assert type(foreign) is DispatchError and str(foreign) == "KeyError: x"
