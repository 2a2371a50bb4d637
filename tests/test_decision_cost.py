"""The decision table's share of the cost per S3 object, as `make bench` prints it."""

from __future__ import annotations

from handler.decisions import cost


def test_a_typical_item_costs_two_one_unit_writes_and_one_read() -> None:
    record = cost.typical_record()
    assert 500 < cost.item_bytes(record) <= 1024
    assert cost.usd_per_million_objects(record) == 2 * 0.625 + 0.125


def test_larger_items_cost_more_write_units() -> None:
    record = cost.typical_record(categories=40)  # a large policy: every score is in the item
    assert 1024 < cost.item_bytes(record) <= 2048
    assert cost.usd_per_million_objects(record) == 2 * 2 * 0.625 + 0.125
