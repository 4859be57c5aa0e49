"""The short soak: `make soak` at a size that fits `make test`."""

from __future__ import annotations

from bench.soak import print_figures, soak, soak_passed


async def test_short_soak_has_no_5xx_no_lost_accounts_and_flat_rss() -> None:
    users, duration = 40, 4.0
    figures, report = await soak(users, duration, concurrency=40)
    print_figures(users, duration, figures, report)
    assert figures.sidecar_5xx == 0, figures.errors[:5]
    assert figures.signed_up == users
    assert report["accounts"] == users
    assert soak_passed(users, figures, report)
    assert figures.statuses[200] > users  # they really browsed
