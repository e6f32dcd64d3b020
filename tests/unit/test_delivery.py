"""Every delivery outcome is an outcome, and Slack shows text as text.

``deliver`` promised never to raise, but an invalid URL in the channel's Secret raised
``httpx.InvalidURL`` (not an ``httpx.HTTPError``) out of it. The caller,
``notifications._deliver``, already turns any exception, and any failure to read the Secret,
into a failed outcome that is recorded; those tests guard that. Slack reads ``<!channel>``
and ``<https://evil|text>`` in a message as a ping and a disguised link: ``&``, ``<`` and ``>``
are now escaped in what is sent to Slack.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from incident_operator import notifications
from incident_operator.adapters.notify import deliver, payload, slack_escape
from incident_operator.context import Settings
from incident_operator.domain.policy import Channel, load_policy
from incident_operator.domain.story import Notification

SLACK = Channel.model_validate(
    {"name": "ops", "kind": "slack", "urlSecretRef": {"name": "hooks", "key": "url"}}
)
WEBHOOK = Channel.model_validate(
    {"name": "pager", "kind": "webhook", "urlSecretRef": {"name": "hooks", "key": "url"}}
)
NOTE = Notification("Initial", "u/Initial/0", 1, "INCIDENT: <dashboard>", "Down <!channel> & more")


@pytest.mark.parametrize("url", ["http://[::1", "http://exa mple.com:99999/", "http://\x00/"])
async def test_an_invalid_url_is_a_failed_delivery_not_an_exception(url: str) -> None:
    async with httpx.AsyncClient() as client:
        outcome = await deliver(client, url, SLACK, {"text": "x"}, "k", 2, 1.0, backoff=0)
    assert not outcome.ok and outcome.attempts == 2
    assert url not in outcome.detail  # a webhook URL is a secret


async def test_an_unexpected_error_in_the_client_is_a_failed_delivery() -> None:
    def broken(_: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as client:
        outcome = await deliver(client, "http://127.0.0.1:9/", SLACK, {}, "k", 1, 1.0)
    assert not outcome.ok and outcome.detail == "RuntimeError"


class _Secrets:
    def __init__(self, value: str | Exception) -> None:
        self.value = value

    async def read(self, namespace: str, name: str, key: str) -> str:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class _Context:
    def __init__(self, secret: str | Exception) -> None:
        self.secrets = _Secrets(secret)
        self.settings = Settings()
        self.policy = load_policy(overrides={"deliveryAttempts": 1})
        self.http = httpx.AsyncClient()


@pytest.mark.parametrize(
    ("secret", "detail"),
    [
        (PermissionError("forbidden"), "webhook secret unavailable: PermissionError"),
        (LookupError("no such key"), "webhook secret unavailable: LookupError"),
        ("http://[::1", "InvalidURL"),
    ],
)
async def test_every_failure_before_sending_is_an_outcome(
    secret: str | Exception, detail: str
) -> None:
    ctx: Any = _Context(secret)
    async with ctx.http:
        ok, said, _ = await notifications._deliver(ctx, "n", "i", SLACK, NOTE)
    assert not ok and detail in said


def test_slack_text_is_escaped() -> None:
    assert slack_escape("a & b <!channel> <https://evil|click>") == (
        "a &amp; b &lt;!channel&gt; &lt;https://evil|click&gt;"
    )
    assert payload(SLACK, NOTE, "i", "n") == {"text": "Down &lt;!channel&gt; &amp; more"}


def test_generic_webhooks_get_the_text_as_it_is() -> None:
    body = payload(WEBHOOK, NOTE, "i", "n")
    assert body["text"] == NOTE.text and body["title"] == NOTE.title
