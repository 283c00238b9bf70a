"""Quota arithmetic: the three modes, the synthetic:real cap, classes without real images."""

import logging

import pytest
from pydantic import ValidationError

from components.config.generator import GenerateParams
from components.generation.quota import format_plan, plan_quota

COUNTS = {"a": 100, "b": 10, "c": 0, "d": 40}


def synthetic(counts, **params) -> list[int]:
    return plan_quota(counts, GenerateParams(**params))["synthetic"].tolist()


def test_columns_and_class_order():
    plan = plan_quota(COUNTS, GenerateParams(n=5, max_ratio=None))
    assert list(plan.columns) == ["class", "label", "real", "requested", "synthetic"]
    assert plan["class"].tolist() == ["a", "b", "c", "d"] and plan["label"].tolist() == [0, 1, 2, 3]


def test_per_class_with_and_without_a_binding_cap():
    assert synthetic(COUNTS, n=50, max_ratio=None) == [50, 50, 0, 50]
    assert synthetic(COUNTS, n=50, max_ratio=2) == [50, 20, 0, 50]
    assert synthetic(COUNTS, n=50, max_ratio=0) == [0, 0, 0, 0]


def test_fill_to_below_the_real_count_gives_zero():
    assert synthetic(COUNTS, mode="fill_to", target=60, max_ratio=None) == [0, 50, 0, 20]
    assert synthetic(COUNTS, mode="fill_to", target=60, max_ratio=1.5) == [0, 15, 0, 20]


def test_balance_brings_classes_to_the_largest():
    assert synthetic(COUNTS, mode="balance", max_ratio=None) == [0, 90, 0, 60]
    assert synthetic(COUNTS, mode="balance", max_ratio=1) == [0, 10, 0, 40]


def test_cap_is_not_fooled_by_float_rounding():
    assert synthetic({"a": 100}, n=1000, max_ratio=0.29) == [29]
    assert synthetic({"a": 3}, n=1000, max_ratio=0.5) == [1]


def test_class_without_real_images_gets_none_and_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="genaug"):
        plan = plan_quota(COUNTS, GenerateParams(n=10, max_ratio=None))
    assert plan.set_index("class").loc["c", "synthetic"] == 0
    assert plan.set_index("class").loc["c", "requested"] == 10
    assert "['c'] have no real training image" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="genaug"):
        plan = plan_quota({"a": 0, "c": 0}, GenerateParams(mode="balance"))
    assert caplog.text == "" and plan["synthetic"].tolist() == [0, 0]  # nothing asked, nothing to warn


def test_fill_to_needs_a_target_and_values_are_checked():
    with pytest.raises(ValidationError, match="needs generate.target"):
        GenerateParams(mode="fill_to")
    with pytest.raises(ValidationError):
        GenerateParams(mode="double")
    with pytest.raises(ValidationError):
        GenerateParams(max_ratio=-1)


def test_format_plan_shows_totals_and_the_rule():
    params = GenerateParams(n=50, max_ratio=2)
    text = format_plan(plan_quota(COUNTS, params), params)
    assert "n=50 per class" in text and "at most 2 synthetic per real image" in text
    assert "cut 2 class(es)" in text
    total = [line for line in text.splitlines() if line.startswith("total")][0].split()
    assert total == ["total", "4", "150", "200", "120"]
