"""Unit tests for the sandbox fault model: validation, header parsing, queue matching."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from emp_tasks.sandbox.faults import Fault, FaultQueue, choose_fault, parse_fault_header


def test_from_dict_keeps_every_field() -> None:
    data = {
        "kind": "rate_limit",
        "status": 429,
        "retry_after": 2,
        "retry_after_ms": 2500,
        "message": "slow down",
        "delay": 0.5,
        "body": {"error": "x"},
        "headers": {"X-A": "1"},
    }
    fault = Fault.from_dict(data)
    assert fault == Fault(
        "rate_limit", 429, 2.0, 2500, "slow down", 0.5, {"error": "x"}, {"X-A": "1"}
    )
    assert fault.to_dict() == {**data, "retry_after": 2.0}


def test_to_dict_omits_unset_fields() -> None:
    assert Fault("reset").to_dict() == {"kind": "reset"}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({}, "kind"),
        ({"kind": ""}, "kind"),
        ({"kind": 3}, "kind"),
        ({"kind": "x", "bogus": 1}, "unknown fault field"),
        ({"kind": "x", "status": 99}, "status"),
        ({"kind": "x", "status": True}, "status"),
        ({"kind": "x", "status": "500"}, "status"),
        ({"kind": "x", "retry_after": -1}, "retry_after"),
        ({"kind": "x", "retry_after": [1]}, "retry_after"),
        ({"kind": "x", "retry_after_ms": -5}, "retry_after_ms"),
        ({"kind": "x", "message": 5}, "message"),
        ({"kind": "x", "delay": -0.1}, "delay"),
        ({"kind": "x", "delay": 10_000}, "delay"),
        ({"kind": "x", "headers": {"a": 1}}, "headers"),
        ({"kind": "x", "headers": ["a"]}, "headers"),
    ],
)
def test_from_dict_rejects_bad_fields_naming_them(data: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Fault.from_dict(data)


@pytest.mark.parametrize(
    ("retry_after", "default", "expected"),
    [
        (None, None, None),
        (None, "1", "1"),
        (2.0, "1", "2"),
        (2.5, None, "2.5"),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "1", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ],
)
def test_retry_after_value_prefers_fault_then_default(
    retry_after: str | float | None, default: str | None, expected: str | None
) -> None:
    assert Fault("rate_limit", retry_after=retry_after).retry_after_value(default) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("reset", Fault("reset")),
        ("rate_limit;retry_after=2;delay=0.5", Fault("rate_limit", retry_after=2.0, delay=0.5)),
        (" server_error ; status=502 ", Fault("server_error", status=502)),
        ("rate_limit;retry_after_ms=1500", Fault("rate_limit", retry_after_ms=1500)),
        (
            "rate_limit;retry_after=Wed, 21 Oct 2015 07:28:00 GMT",
            Fault("rate_limit", retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
        ),
        ("workflow_error;message=boom%3B really", Fault("workflow_error", message="boom; really")),
        ("non_json;body=<p>hi</p>", Fault("non_json", body="<p>hi</p>")),
        ("slow;delay=0.25;", Fault("slow", delay=0.25)),
    ],
)
def test_parse_fault_header_reads_kind_and_params(header: str, expected: Fault) -> None:
    assert parse_fault_header(header) == expected


@pytest.mark.parametrize(
    "header",
    ["", ";status=500", "x;status", "x;status=abc", "x;nope=1", "x;delay=-1", "x;headers=a"],
)
def test_parse_fault_header_rejects_malformed_values(header: str) -> None:
    with pytest.raises(ValueError):
        parse_fault_header(header)


def test_queue_pops_faults_in_fifo_order() -> None:
    queue = FaultQueue()
    assert queue.push([Fault("a"), Fault("b")]) == 2
    assert [queue.take({}), queue.take({}), queue.take({})] == [Fault("a"), Fault("b"), None]


def test_queue_take_skips_faults_whose_match_does_not_fit() -> None:
    queue = FaultQueue()
    queue.push([Fault("for-x")], match={"workflow_id": "x"})
    queue.push([Fault("any")])
    assert queue.take({"workflow_id": "y"}) == Fault("any")
    assert queue.take({"workflow_id": "y"}) is None
    assert queue.take({"workflow_id": "x"}) == Fault("for-x")
    assert len(queue) == 0


@pytest.mark.parametrize(
    ("match", "attrs", "fits"),
    [
        ({}, {}, True),
        ({"workflow_id": "x"}, {"workflow_id": "x", "model": "m"}, True),
        ({"workflow_id": "x", "model": "m"}, {"workflow_id": "x"}, False),
        ({"workflow_id": "x"}, {}, False),
        ({"workflow_id": None}, {"workflow_id": None}, True),
        ({"count": 1}, {"count": "1"}, False),
    ],
)
def test_match_requires_every_key_to_be_present_and_equal(
    match: dict[str, Any], attrs: dict[str, Any], fits: bool
) -> None:
    queue = FaultQueue()
    queue.push([Fault("f")], match=match)
    assert (queue.take(attrs) is not None) is fits


def test_pending_is_a_snapshot_and_clear_empties_the_queue() -> None:
    queue = FaultQueue()
    queue.push([Fault("a")], match={"workflow_id": "x"})
    snapshot = queue.pending()
    snapshot[0][1]["workflow_id"] = "changed"
    assert queue.pending() == [(Fault("a"), {"workflow_id": "x"})]
    queue.clear()
    assert queue.pending() == []
    assert len(queue) == 0


def test_choose_fault_header_wins_and_leaves_queue_untouched() -> None:
    queue = FaultQueue()
    queue.push([Fault("queued")])
    assert choose_fault(Fault("header"), queue, {}) == Fault("header")
    assert len(queue) == 1
    assert choose_fault(None, queue, {}) == Fault("queued")
    assert choose_fault(None, queue, {}) is None


def test_concurrent_takes_hand_out_each_fault_exactly_once() -> None:
    queue = FaultQueue()
    queue.push([Fault(f"f{i}") for i in range(400)])
    taken: list[Fault] = []
    lock = threading.Lock()

    def worker() -> None:
        while (fault := queue.take({})) is not None:
            with lock:
                taken.append(fault)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(f.kind for f in taken) == sorted(f"f{i}" for i in range(400))
