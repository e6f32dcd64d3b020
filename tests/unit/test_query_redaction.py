"""Query texts shown in a step's output have every kind of string literal redacted.

Plain ``'...'`` literals were redacted, but ``ALTER ROLE app PASSWORD $$hunter2$$`` and
``E'a\\' , secret'`` were shown as they are: dollar-quoted strings (``$$...$$``,
``$tag$...$tag$``) and escape strings (``E'...'``, with backslash escapes) are literals too.
"""

from __future__ import annotations

import pytest

from incident_operator.actions.postgres import redact_literals, short_query

SECRET = "hunter2"


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("ALTER ROLE app PASSWORD $$hunter2$$", "ALTER ROLE app PASSWORD '?'"),
        ("SELECT $pw$hunter2$pw$ AS p", "SELECT '?' AS p"),
        ("SELECT $a$ hunter2 $b$ still $a$, 1", "SELECT '?', 1"),  # $b$ inside does not end it
        ("SELECT $$hunter2 never closed", "SELECT '?'"),
        (r"SELECT E'a\' , hunter2'", "SELECT E'?'"),
        (r"SELECT e'\\', 'hunter2'", "SELECT E'?', '?'"),  # \\ is one backslash: it ends
        ("SELECT E'hunter2", "SELECT E'?'"),
        ("UPDATE t SET p = 'it''s hunter2'", "UPDATE t SET p = '?'"),
        ("SELECT 'hunter2", "SELECT '?'"),
        ("SELECT U&'hunter2', B'1010', X'ff'", "SELECT U&'?', B'?', X'?'"),
    ],
)
def test_every_kind_of_literal_is_redacted(query: str, shown: str) -> None:
    assert redact_literals(query) == shown
    assert SECRET not in short_query(query, 500)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM t WHERE a = $1 AND b = $2",  # parameters are not dollar quotes
        "SELECT a$b$c FROM t",  # nor is a $ inside an identifier
        'SELECT "it\'s" FROM "we$$ird"',  # quoted identifiers are not literals
        "SELECT name FROM people",  # an E in a word is not an E'' prefix
    ],
)
def test_what_is_not_a_literal_stays(query: str) -> None:
    assert redact_literals(query) == query


def test_an_identifier_ending_in_e_before_a_quote_is_not_an_escape_string() -> None:
    assert redact_literals("SELECT some'hunter2'") == "SELECT some'?'"


def test_a_long_query_is_redacted_in_linear_time_and_cut() -> None:
    text = "SELECT " + "$a$ x " * 50_000 + "'hunter2'"
    assert SECRET not in short_query(text, 10_000)
    assert len(short_query(text)) <= 60
