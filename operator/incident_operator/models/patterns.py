"""Regular expressions written by people: RE2 only, with a bound on their size.

Runbook patterns (``pattern`` of httpCheck, podLogs and execInPod) and the policy's exec
parameter patterns run against text the operator does not control. Python's ``re`` backtracks:
``^(a+)+$`` against forty ``a`` and a ``!`` never ends. RE2 runs in time linear in the text and
has no lookaround or backreferences; its cost per character grows with the compiled program,
so programs larger than :data:`MAX_PROGRAM_SIZE` instructions are refused. Every such pattern
is compiled here, once when its Runbook or policy is validated, and again when it runs.
"""

from __future__ import annotations

import functools
from typing import Protocol

import re2

#: RE2 instructions a pattern may compile to. ``ERROR|FATAL`` is 14, ``"status": ?"ok"`` 19;
#: matching costs up to about 40 ns per character and instruction when RE2's DFA gives up.
MAX_PROGRAM_SIZE = 1000
#: The same for the policy's exec parameter patterns: an admin's, matched against arguments of
#: at most 1024 characters (the default host name pattern compiles to about 1000).
MAX_POLICY_PROGRAM_SIZE = 4000
#: Memory RE2 may use for one pattern (program and DFA cache).
MAX_MEMORY = 2 << 20


class Pattern(Protocol):
    """A compiled pattern, as the callers use it."""

    def search(self, text: str) -> object | None: ...

    def fullmatch(self, text: str) -> object | None: ...


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the reason goes into the error message instead of stderr
    options.max_mem = MAX_MEMORY
    return options


@functools.lru_cache(maxsize=256)
def compile_pattern(
    pattern: str, dot_matches_newline: bool = False, max_program_size: int = MAX_PROGRAM_SIZE
) -> Pattern:
    """The compiled RE2 pattern; ``ValueError`` saying why when RE2 refuses it or it is too
    large."""
    options = _options()
    options.dot_nl = dot_matches_newline
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        reason = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        raise ValueError(
            f"not a pattern RE2 accepts ({reason}); RE2 has no lookaround or backreferences"
        ) from None
    if compiled.programsize > max_program_size:
        raise ValueError(
            f"pattern too large: it compiles to {compiled.programsize} RE2 instructions, at "
            f"most {max_program_size} are allowed (use smaller repetition counts)"
        )
    return compiled


def check_pattern(pattern: str) -> str:
    """A pydantic validator: the pattern unchanged when RE2 accepts it."""
    compile_pattern(pattern)
    return pattern
