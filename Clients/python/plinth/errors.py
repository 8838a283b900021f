"""Exceptions raised by the Plinth client: one class per gRPC canonical code.

Every error the daemon reports, every transport failure and every problem the
client finds in its own input is a `PlinthError` carrying `.code` (the gRPC
canonical number the daemon uses on the wire), `.code_name` ("NOT_FOUND") and
`.message`. Catch a subclass to handle one kind of failure:

    try:
        client.push("user_stats", rows)
    except plinth.PermissionDeniedError:
        ...
"""

from __future__ import annotations

from typing import Dict, Optional, Type

# gRPC canonical codes, by number (plinth.v1.Status.Code).
CODE_NAMES: Dict[int, str] = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


class PlinthError(Exception):
    """Base class of every error the client raises.

    Attributes:
        code: the gRPC canonical status code (an int, e.g. 5).
        code_name: its name (e.g. "NOT_FOUND").
        message: what went wrong, as the daemon or the client said it.
    """

    #: The status code a subclass stands for; PlinthError itself uses UNKNOWN
    #: unless given another.
    default_code: int = 2

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        self.code: int = self.default_code if code is None else int(code)
        self.message: str = message
        super().__init__(message)

    @property
    def code_name(self) -> str:
        return CODE_NAMES.get(self.code, "CODE_%d" % self.code)

    def __str__(self) -> str:
        return "%s: %s" % (self.code_name, self.message)

    def __repr__(self) -> str:
        return "%s(%r, code=%d)" % (type(self).__name__, self.message, self.code)


class CancelledError(PlinthError):
    default_code = 1


class UnknownError(PlinthError):
    default_code = 2


class InvalidArgumentError(PlinthError):
    default_code = 3


class DeadlineExceededError(PlinthError):
    """Also raised when a reply does not come within the client's timeout."""

    default_code = 4


class NotFoundError(PlinthError):
    default_code = 5


class AlreadyExistsError(PlinthError):
    default_code = 6


class PermissionDeniedError(PlinthError):
    default_code = 7


class ResourceExhaustedError(PlinthError):
    default_code = 8


class FailedPreconditionError(PlinthError):
    default_code = 9


class AbortedError(PlinthError):
    default_code = 10


class OutOfRangeError(PlinthError):
    default_code = 11


class UnimplementedError(PlinthError):
    default_code = 12


class InternalError(PlinthError):
    default_code = 13


class UnavailableError(PlinthError):
    """The daemon cannot be reached, or closed the connection."""

    default_code = 14


class DataLossError(PlinthError):
    default_code = 15


class UnauthenticatedError(PlinthError):
    default_code = 16


_BY_CODE: Dict[int, Type[PlinthError]] = {
    cls.default_code: cls
    for cls in (
        CancelledError, UnknownError, InvalidArgumentError, DeadlineExceededError,
        NotFoundError, AlreadyExistsError, PermissionDeniedError,
        ResourceExhaustedError, FailedPreconditionError, AbortedError,
        OutOfRangeError, UnimplementedError, InternalError, UnavailableError,
        DataLossError, UnauthenticatedError,
    )
}


def error_for(code: int, message: str) -> PlinthError:
    """The exception for a status the daemon sent (a code it may not know yet
    becomes a plain PlinthError that still carries the number)."""
    cls = _BY_CODE.get(int(code), PlinthError)
    return cls(message or CODE_NAMES.get(int(code), "error"), code=int(code))
