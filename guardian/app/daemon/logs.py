"""The daemon's logs: JSON lines, or text on a terminal, on stderr.

Input: the log format asked for (``--log-format``, else ``daemon.log_format``). Output: the
root logger's one handler and the levels of the SDKs' loggers. Called by
``guardian.app.daemon.commands`` when ``guardian run`` starts.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the execution if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        execution = getattr(record, "execution", None)
        if execution:
            line["execution"] = execution
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup_logging(fmt: str) -> None:
    """JSON lines, or text when ``fmt`` is text (or auto on a terminal), on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("kubernetes", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for reported in ("apscheduler", "urllib3"):  # guardian logs what matters of these itself
        logging.getLogger(reported).setLevel(logging.ERROR)
