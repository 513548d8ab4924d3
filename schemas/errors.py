"""Errors every write path raises; the API renders them as RFC 9457 problem+json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One precise, machine-readable reason: which row (if any), which field, what and why."""

    field: str
    message: str
    code: str = "invalid"
    row: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class StoreError(Exception):
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    status: int = 400
    title: str = "Bad request"
    type: str = "about:blank"

    def __str__(self) -> str:
        lines = [self.detail] + [
            (f"row {e.row}: " if e.row is not None else "") + f"{e.field}: {e.message}"
            for e in self.errors
        ]
        return "\n".join(lines)


class ValidationFailed(StoreError):
    def __init__(self, errors: list[FieldError], detail: str = "") -> None:
        super().__init__(
            detail=detail or f"{len(errors)} validation error(s); nothing was written",
            errors=errors,
            status=422,
            title="Validation failed",
            type="https://tunemantra.org/problems/validation",
        )


class NotFound(StoreError):
    def __init__(self, what: str) -> None:
        super().__init__(detail=f"{what} not found", status=404, title="Not found")


class Conflict(StoreError):
    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(
            detail=detail,
            errors=errors or [],
            status=409,
            title="Conflict",
            type="https://tunemantra.org/problems/conflict",
        )


class Forbidden(StoreError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail, status=403, title="Forbidden")
