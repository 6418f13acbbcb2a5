"""One error family for the server; each class carries its HTTP status and a stable code."""

from __future__ import annotations

from typing import Any


class CrewlineError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(CrewlineError):
    status_code = 422
    code = "invalid_input"


class NotFound(CrewlineError):
    status_code = 404
    code = "not_found"


class Conflict(CrewlineError):
    status_code = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class NotAuthenticated(CrewlineError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(CrewlineError):
    status_code = 403
    code = "forbidden"
