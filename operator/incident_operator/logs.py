"""Logging to stderr: readable text by default, JSON lines as an option.

Every line about an Incident carries its ``namespace/name``: in the text of our own lines,
and as the field ``incident`` in JSON (Kopf's per-object lines carry ``k8s_ref``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                json_default=str,  # Kopf's extras hold objects; a line must never fail
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    # Each health probe would be a line: keep the access log for warnings only.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def about(namespace: str, name: str) -> dict[str, Any]:
    """``extra=`` for a line about one Incident."""
    return {"incident": f"{namespace}/{name}"}
