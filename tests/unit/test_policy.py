from __future__ import annotations

from pathlib import Path

import pytest

from incident_operator.domain.policy import PolicyError, load_policy


def test_defaults_are_the_playbook() -> None:
    policy = load_policy()
    expected = {
        1: ("CRITICAL", "2m", "10m", "24h", True),
        2: ("HIGH", "5m", "15m", "48h", True),
        3: ("MEDIUM", "15m", "1h", None, False),
        4: ("LOW", "1h", "24h", None, False),
    }
    for level, (name, response, cadence, review, war_room) in expected.items():
        got = policy.level(level)
        assert (
            got.name,
            got.response_time,
            got.update_cadence,
            got.review_within,
            got.war_room,
        ) == (name, response, cadence, review, war_room)
    assert policy.level(1).stakeholders == ["CEO", "CTO", "VP Engineering"]
    assert policy.level(2).stakeholders == ["VP Engineering", "Product Manager"]
    assert policy.escalation_chain == [
        "On-Call Engineer",
        "Engineering Lead",
        "VP Engineering",
        "CTO",
    ]


def test_file_overrides_one_field_of_one_level(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("levels:\n- level: 2\n  responseTime: 3m\ntimeScale: 10\n")
    policy = load_policy(path)
    assert policy.level(2).response_time == "3m"
    assert policy.level(2).update_cadence == "15m"
    assert policy.time_scale == 10


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("levels:\n- level: 2\n  responseTime: soon\n", "levels.1.responseTime"),
        ("timeScale: -1\n", "timeScale"),
        ("escalationChain: []\n", "escalationChain"),
        ("- just a list\n", "must hold a mapping"),
        (
            "channels:\n- name: slack\n  kind: pager\n  urlSecretRef: {name: s, key: url}\n",
            "channels.0.kind",
        ),
    ],
)
def test_invalid_policy_names_the_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    with pytest.raises(PolicyError, match=message.replace(".", r"\.")):
        load_policy(path)
