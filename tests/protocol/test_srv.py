"""RFC 2782 ordering and RFC 6120 §3.2 target selection (sans-I/O)."""

from __future__ import annotations

import pytest

from tercet.protocol.srv import NoService, SrvRecord, Target, order_srv, plan_targets


def rec(priority: int, weight: int, target: str, port: int = 5269) -> SrvRecord:
    return SrvRecord(priority, weight, port, target)


def test_priority_orders_first() -> None:
    records = [rec(20, 0, "c"), rec(10, 0, "a"), rec(15, 0, "b")]
    assert [r.target for r in order_srv(records, lambda n: 0)] == ["a", "b", "c"]


def test_weight_selection_uses_running_sum() -> None:
    records = [rec(0, 10, "x"), rec(0, 30, "y"), rec(0, 60, "z")]
    # rand(total) = total always selects the last of the running sums.
    assert [r.target for r in order_srv(records, lambda n: n)] == ["z", "y", "x"]
    # rand = 0 selects the first record whose running sum is >= 0.
    assert [r.target for r in order_srv(records, lambda n: 0)] == ["x", "y", "z"]
    # 11..40 falls in y's range first.
    assert order_srv(records, lambda n: 11 if n == 100 else 0)[0].target == "y"


def test_zero_weight_placed_first_but_rarely_chosen() -> None:
    records = [rec(0, 5, "heavy"), rec(0, 0, "zero")]
    assert [r.target for r in order_srv(records, lambda n: n)] == ["heavy", "zero"]
    assert [r.target for r in order_srv(records, lambda n: 0)] == ["zero", "heavy"]


def test_weighted_distribution_roughly_follows_weights() -> None:
    import random
    rng = random.Random(4)
    records = [rec(0, 1, "rare"), rec(0, 9, "common")]
    firsts = [order_srv(records, lambda n: rng.randint(0, n))[0].target for _ in range(2000)]
    assert 0.8 < firsts.count("common") / 2000 < 0.97


def test_fallback_to_domain_without_srv() -> None:
    assert plan_targets("example.org", None, None) == [Target("example.org", 5269, False)]
    assert plan_targets("example.org", [], []) == [Target("example.org", 5269, False)]


def test_both_services_merged_by_priority() -> None:
    targets = plan_targets("example.org", [rec(5, 0, "tls.example.org", 5270)],
                           [rec(10, 0, "xmpp.example.org.")], lambda n: 0)
    assert targets == [Target("tls.example.org", 5270, True),
                       Target("xmpp.example.org", 5269, False)]


def test_dot_target_means_no_service() -> None:
    with pytest.raises(NoService):
        plan_targets("example.org", None, [rec(0, 0, ".", 0)])
    with pytest.raises(NoService):
        plan_targets("example.org", [rec(0, 0, ".", 0)], [rec(0, 0, ".", 0)])
    # One service decidedly absent, the other present: use the present one.
    assert plan_targets("example.org", [rec(0, 0, ".", 0)], [rec(0, 0, "x.org")]) == [
        Target("x.org", 5269, False)]
