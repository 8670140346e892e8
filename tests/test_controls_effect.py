"""How controls combine for one run (issue 14 item 1): scopes, most-restrictive-wins, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tether.controls.effect import ControlSet, label
from tether.controls.kinds import ControlError, ControlKind, normalise, parse_duration, parse_scope
from tether.store.controls import ControlRecord

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def control(
    kind: str, value: str = "", scope: str = "all", *, age_s: int = 60, **extra: object
) -> ControlRecord:
    fields: dict[str, object] = {
        "id": f"ctl_{kind}_{scope}_{value}",
        "kind": kind,
        "scope": scope,
        "value": value,
        "reason": "test",
        "created_by": "op",
        "created_at": NOW - timedelta(seconds=age_s),
        "expires_at": None,
        "cleared_at": None,
        "cleared_by": None,
        "cleared_reason": None,
        **extra,
    }
    return ControlRecord.model_validate(fields)


def test_scope_picks_the_runs_a_control_covers() -> None:
    controls = ControlSet(
        (
            control("read_only", scope="tenant:acme"),
            control("cap_steps", "3", scope="release:v2"),
            control("disable_tool", "issue_refund"),
        )
    )
    acme_v1 = controls.for_run("acme", "v1", NOW)
    other_v2 = controls.for_run("other", "v2", NOW)
    assert acme_v1.read_only is not None and other_v2.read_only is None
    assert acme_v1.max_steps(12) == 12 and other_v2.max_steps(12) == 3
    assert acme_v1.tool_refusal("issue_refund", is_write=True) is not None
    assert other_v2.tool_refusal("lookup_order", is_write=False) is None
    assert len(acme_v1.labels) == 2 and len(other_v2.labels) == 2


def test_the_most_restrictive_wins_and_the_most_specific_names_the_model() -> None:
    controls = ControlSet(
        (
            control("cap_steps", "5"),
            control("cap_steps", "2", scope="tenant:acme"),
            control("switch_model", "scripted:b", age_s=10),
            control("switch_model", "scripted:c", scope="release:v1", age_s=100),
            control("force_review", "writes"),
            control("force_review", "all", scope="tenant:acme"),
        )
    )
    effective = controls.for_run("acme", "v1", NOW)
    assert effective.max_steps(12) == 2
    assert effective.max_steps(1) == 1  # a cap never raises the release's own limit
    assert effective.model is not None and effective.model.value == "scripted:c"  # release beats all
    assert effective.review_reason("lookup_order", is_write=False) is not None  # `all` wins
    elsewhere = controls.for_run("other", "v2", NOW)
    assert elsewhere.model is not None and elsewhere.model.value == "scripted:b"
    assert elsewhere.review_reason("lookup_order", is_write=False) is None
    assert elsewhere.review_reason("issue_refund", is_write=True) is not None


def test_tool_scopes_narrow_tool_level_controls() -> None:
    controls = ControlSet((control("force_review", "writes", scope="tool:lookup_order"),))
    effective = controls.for_run("t", "v", NOW)
    assert effective.review_reason("lookup_order", is_write=False) is not None
    assert effective.review_reason("issue_refund", is_write=True) is None


def test_read_only_refuses_writes_only_and_says_so() -> None:
    effective = ControlSet((control("read_only"),)).for_run("t", "v", NOW)
    refusal = effective.tool_refusal("issue_refund", is_write=True)
    assert refusal is not None and "read-only" in refusal and "not called" in refusal
    assert effective.tool_refusal("lookup_order", is_write=False) is None


def test_expired_and_cleared_controls_stop_applying_without_anyone_acting() -> None:
    expiring = control("pause_runs", expires_at=NOW + timedelta(minutes=5))
    cleared = control("stop_background", cleared_at=NOW - timedelta(seconds=1), cleared_by="op")
    controls = ControlSet((expiring, cleared))
    assert controls.for_run("t", "v", NOW).refuses_new_runs is expiring
    assert controls.for_run("t", "v", NOW + timedelta(minutes=5)).refuses_new_runs is None
    assert controls.for_run("t", "v", NOW).stop is None


def test_labels_name_id_kind_value_and_scope() -> None:
    assert (
        label(control("cap_steps", "3", scope="tenant:a")) == "ctl_cap_steps_tenant:a_3 cap_steps=3 @tenant:a"
    )


@pytest.mark.parametrize(
    ("kind", "value", "scope", "message"),
    [
        ("disable_tool", "", "all", "needs the tool's name"),
        ("cap_steps", "zero", "all", "whole number"),
        ("cap_steps", "0", "all", "at least 1"),
        ("force_review", "some", "all", "writes"),
        ("switch_model", "gpt", "all", "model reference"),
        ("maintenance", "", "all", "message"),
        ("read_only", "yes", "all", "takes no value"),
        ("pause_runs", "soon", "all", "Retry-After"),
        ("read_only", "", "tool:issue_refund", "applies to runs"),
        ("disable_tool", "a", "tool:b", "names tool"),
    ],
)
def test_bad_controls_are_refused_with_the_fix(kind: str, value: str, scope: str, message: str) -> None:
    with pytest.raises(ControlError, match=message):
        normalise(ControlKind(kind), parse_scope(scope), value)


def test_scopes_and_durations_parse_or_say_what_is_accepted() -> None:
    assert str(parse_scope("tenant:acme")) == "tenant:acme" and str(parse_scope("all")) == "all"
    assert normalise(ControlKind.DISABLE_TOOL, parse_scope("tool:issue_refund"), "") == "issue_refund"
    assert parse_duration("30m") == timedelta(minutes=30) and parse_duration("2h") == timedelta(hours=2)
    with pytest.raises(ControlError, match="tenant:<id>"):
        parse_scope("team:x")
    with pytest.raises(ControlError, match="45s, 30m"):
        parse_duration("soon")
