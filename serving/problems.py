"""Errors as RFC 9457 problem details (`application/problem+json`), naming the fields at fault."""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("carprice.serving")


class Problem(Exception):
    """An answer that is not a success: status, title, detail and the fields at fault."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        errors: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def to_response(self) -> Response:
        body = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
        }
        if self.errors:
            body["errors"] = self.errors
        response = Response(orjson.dumps(body), status=self.status, mimetype=PROBLEM_JSON)
        response.headers.update(self.headers)
        return response


def field_error(field: str, message: str) -> dict:
    """Return one entry of a problem's `errors` list."""
    return {"field": field, "message": message}


def _http_problem(err: HTTPException) -> Response:
    code = err.code or 500
    fields = []
    if code == 413:
        fields = [field_error("body", err.description or "request body is too large")]
    problem = Problem(code, err.name, err.description or err.name, fields)
    response = problem.to_response()
    if code == 405 and getattr(err, "valid_methods", None):
        response.headers["Allow"] = ", ".join(err.valid_methods)
    return response


def _unexpected(err: Exception) -> Response:
    log.exception("unhandled error: %s", err)
    return Problem(500, "Internal Server Error", "the server failed to answer").to_response()


def register(app: Flask) -> None:
    """Answer every error of the app as problem+json."""
    app.register_error_handler(Problem, Problem.to_response)
    app.register_error_handler(HTTPException, _http_problem)
    app.register_error_handler(Exception, _unexpected)
