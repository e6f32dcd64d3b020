"""Duration strings of the custom resources ("10m", "500ms", "1h30m") to seconds and back.

The grammar is the one of ``models.base.Duration``: one or more ``<number><unit>`` parts,
where the number may have a fraction and the unit is ``ms``, ``s``, ``m``, ``h`` or ``d``.
"""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: The longest duration anywhere (Runbooks, the policy): 365 days. The CRD schema says the same
#: with a CEL rule (``models.base.DURATION_CAP_RULE``), so no deadline can overflow a date.
MAX_DURATION_SECONDS = 365 * 86400
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+")


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``"1h30m"``; ``ValueError`` when it is not one, or when
    it is longer than 365 days."""
    value = text.strip()
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 500ms, 30s, 10m, 1h30m, 2d)")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(value))
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"duration {text!r} is too long: durations are at most 365d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest readable duration string, at millisecond precision: ``5400`` -> ``"1h30m"``.

    The result parses back with ``parse_duration`` to the input rounded to milliseconds.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration in seconds: {seconds!r}")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    whole, millis = divmod(millis, 1000)
    days, whole = divmod(whole, 86400)
    hours, whole = divmod(whole, 3600)
    minutes, secs = divmod(whole, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if secs or millis:
        fraction = f".{millis:03d}".rstrip("0") if millis else ""
        parts.append(f"{secs}{fraction}s")
    return "".join(parts)


def inner_timeout(timeout: float) -> float:
    """A deadline for the network calls of a step that must finish within ``timeout`` seconds.

    It leaves a margin (10 %, at most one second) so that a server-side statement timeout or
    a client socket timeout fires, with its clearer message, before the engine's own deadline
    cancels the step.
    """
    return max(0.1, timeout - min(1.0, timeout * 0.1))
