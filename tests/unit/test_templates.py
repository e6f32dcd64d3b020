"""The policy's message templates are checked when the policy loads, never at decision time.

A template is Python ``str.format`` over the fields of ``MessageFields``. Before, ``{0}``
raised IndexError and ``{service:>99999999999}`` MemoryError on every decision that sent a
message, and ``{service.__class__}`` reached into the objects. Now each template is parsed and
test-rendered when the policy loads: a positional or unknown field, attribute or index access,
a nested or too wide format spec stops start-up with a PolicyError that names the field.
"""

from __future__ import annotations

import dataclasses

import pytest

from incident_operator.domain import messages
from incident_operator.domain.policy import PolicyError, load_policy


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("INCIDENT {0}", "{0}"),
        ("INCIDENT {}", "{}"),
        ("{service:>99999999999}", "width"),
        ("{summary:.99999999}", "width"),
        ("{nope} is down", "{nope}"),
        ("{service.__class__.__mro__}", "{service.__class__.__mro__}"),
        ("{incident[0]}", "{incident[0]}"),
        ("{service:{severity}}", "nested"),
        ("{service:d}", "{service:d}"),  # a string has no integer format: found by rendering
        ("unbalanced {service", "not a template"),
        ("closing } alone", "not a template"),
    ],
)
@pytest.mark.parametrize("which", ["initial", "update", "resolved"])
def test_a_bad_template_stops_start_up_with_the_field_named(
    which: str, template: str, named: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(overrides={"templates": {which: template}})
    text = str(caught.value)
    assert f"templates.{which}" in text and named in text


def test_good_templates_load_and_render() -> None:
    policy = load_policy(
        overrides={
            "templates": {
                "initial": "{service:>12}|{severity:02d}|{summary!r:.20}|{{literal}}",
                "update": "UPDATE #{number} {service}: {status}",
                "resolved": "RESOLVED {service} after {duration}",
            }
        }
    )
    assert policy.templates.initial is not None
    text = messages.render(policy.templates.initial, messages.SAMPLE)
    assert text.startswith(f"{messages.SAMPLE.service:>12}|0") and text.endswith("|{literal}")


@pytest.mark.parametrize(
    "template",
    [messages.INITIAL, messages.UPDATE, messages.RESOLVED, messages.ESCALATION, messages.APPROVAL],
)
def test_the_built_in_templates_pass_the_same_check(template: str) -> None:
    messages.check_template(template)


def test_every_field_the_readme_lists_is_a_field() -> None:
    names = {f.name for f in dataclasses.fields(messages.MessageFields)}
    assert names == messages.FIELDS
