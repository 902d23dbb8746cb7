"""Audience definitions: the packaged file loads; a bad file is refused naming the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from cva_tasks.audiences.definitions import (
    DEFAULT_AUDIENCES,
    AudienceDefinitionError,
    Condition,
    Recommendations,
    load_audiences,
)
from cva_tasks.settings import Settings


def test_the_packaged_audiences_load():
    audiences = {a.name: a for a in load_audiences()}
    assert list(audiences) == ["win_back", "vip", "at_risk_negative_feedback", "cross_sell"]
    assert audiences["win_back"].where == (Condition("churn_tier", "in", ("High",)),)
    assert audiences["win_back"].any_of == (
        (Condition("clv_365d", "top_share", 0.25),),
        (Condition("monetary_value", "top_share", 0.25),),
    )
    assert audiences["vip"].where == () and len(audiences["vip"].any_of) == 2
    assert audiences["cross_sell"].recommendations == Recommendations("next_best", 3)
    assert all(a.description for a in audiences.values())


def test_cva_audiences_points_at_another_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "audiences:\n  - name: big_spenders\n    description: spend\n"
        "    where:\n      monetary_value: {min: 1000}\n"
    )
    settings = Settings.from_env({"CVA_AUDIENCES": str(path)})
    assert settings.audiences == path
    assert Settings.from_env({}).audiences == DEFAULT_AUDIENCES
    (audience,) = load_audiences(settings.audiences)
    assert audience.where == (Condition("monetary_value", "min", 1000.0),)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "audiences.yaml"
    path.write_text(body)
    return path


ONE = "audiences:\n  - name: {name}\n    description: d\n{rest}"


@pytest.mark.parametrize(
    ("name", "rest", "message"),
    [
        (
            "win_back",
            "    where:\n      churn_teir: {in: [High]}\n",
            r"audience 'win_back': where: column 'churn_teir' is not a customer_scores column",
        ),
        (
            "win_back",
            "    where:\n      churn_tier: {min: 1}\n",
            r"audience 'win_back': where: churn_tier: min needs a numeric column",
        ),
        (
            "win_back",
            "    where:\n      clv_365d: {top_share: 1.5}\n",
            r"audience 'win_back': where: clv_365d: top_share: 1.5 must be a share in \(0, 1\]",
        ),
        (
            "win_back",
            "    where:\n      clv_365d: {above: 3}\n",
            r"audience 'win_back': where: clv_365d: unknown operator 'above'",
        ),
        (
            "win_back",
            "    where:\n      clv_365d: {min: lots}\n",
            r"audience 'win_back': where: clv_365d: min: 'lots' is not a number",
        ),
        ("win_back", "", r"audience 'win_back': needs at least one condition"),
        (
            "Win-Back",
            "    where:\n      clv_365d: {min: 1}\n",
            r"audience #1: name 'Win-Back' must be lower-case letters",
        ),
        (
            "cross_sell",
            "    where:\n      recency_days: {max: 90}\n"
            "    recommendations: {list: upsell, top: 3}\n",
            r"audience 'cross_sell': recommendations: list 'upsell' is not one of",
        ),
        (
            "cross_sell",
            "    where:\n      recency_days: {max: 90}\n"
            "    recommendations: {list: next_best, top: 0}\n",
            r"audience 'cross_sell': recommendations: top 0 must be a whole number from 1 to 10",
        ),
        (
            "vip",
            "    any_of:\n      - segment: {in: [Champions]}\n      - {}\n",
            r"audience 'vip': an any_of group has no condition",
        ),
        (
            "vip",
            "    where:\n      segment: {in: [Champions]}\n    when: always\n",
            r"audience 'vip': unknown key\(s\) \['when'\]",
        ),
    ],
)
def test_a_broken_definition_is_refused_naming_file_audience_and_rule(
    tmp_path, name, rest, message
):
    path = write(tmp_path, ONE.format(name=name, rest=rest))
    with pytest.raises(AudienceDefinitionError, match=message) as caught:
        load_audiences(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_name_defined_twice_is_refused(tmp_path):
    entry = "  - name: vip\n    description: d\n    where:\n      segment: {in: [Champions]}\n"
    path = write(tmp_path, "audiences:\n" + entry + entry)
    with pytest.raises(AudienceDefinitionError, match=r"audience 'vip': the name is defined twice"):
        load_audiences(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("segments: []\n", r"needs a list under 'audiences:'"),
        ("audiences: []\n", r"no audience defined"),
        ("audiences: [\n", r"cannot read the audience definitions"),
    ],
)
def test_an_unusable_file_is_refused(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(AudienceDefinitionError, match=message):
        load_audiences(path)
    with pytest.raises(AudienceDefinitionError, match=r"cannot read"):
        load_audiences(tmp_path / "absent.yaml")


def test_a_definition_error_is_not_retried():
    from cva_tasks.steps.failures import retry_cannot_help

    assert retry_cannot_help(AudienceDefinitionError("x"))
