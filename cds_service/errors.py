"""Client errors as JSON (DESIGN.md "Errors are JSON"; checklist REQ-10, ERR-4)."""

from __future__ import annotations


class ApiError(Exception):
    """An error the client caused, answered as ``{"error": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.code, "message": self.message}
        body.update({k: v for k, v in self.extra.items() if v not in (None, "", [], {})})
        return body
