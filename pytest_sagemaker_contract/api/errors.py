"""AWS's error shapes: what a client's botocore turns into the same ClientError it raises against AWS."""

from __future__ import annotations

__all__ = ["ApiError", "not_found", "validation"]


class ApiError(Exception):
    """An error answer: AWS's error code (`__type` in the JSON protocol, `Code` in the query protocol),
    its message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFound", message)
