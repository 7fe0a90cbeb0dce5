"""JSON-lines logging: gunicorn.conf.py formats gunicorn's and the app's records with this."""

from __future__ import annotations

import datetime as dt
import logging
import sys

import orjson
from gunicorn.glogging import Logger


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class JsonLogger(Logger):
    """gunicorn's logger, writing JSON lines to stdout; the app's `carprice` loggers join it."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                    handler.setStream(sys.stdout)
                handler.setFormatter(formatter)
        app = logging.getLogger("carprice")
        if not app.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(formatter)
            app.addHandler(handler)
        app.setLevel(logging.INFO)
        app.propagate = False
