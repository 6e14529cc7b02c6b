"""Lost events told from seq numbers (emocam.edge.mqtt.event_gaps): gaps, repeats, restarts, per device."""

from __future__ import annotations

from emocam.edge.mqtt.event_gaps import REPEAT_WINDOW, Gap, SequenceGaps


def test_a_gap_is_reported_once_with_its_range() -> None:
    gaps = SequenceGaps()
    assert [gaps.see("kitchen", seq) for seq in (1, 2, 3)] == [None, None, None]
    assert gaps.see("kitchen", 7) == Gap("kitchen", 4, 6)
    assert gaps.see("kitchen", 8) is None
    assert (gaps.missed, gaps.devices_with_gaps, gaps.repeats, gaps.restarts) == (3, {"kitchen"}, 0, 0)


def test_the_first_event_seen_is_no_gap_and_devices_count_apart() -> None:
    gaps = SequenceGaps()
    assert gaps.see("kitchen", 500) is None  # the listener started late: nothing is known before
    assert gaps.see("hall", 1) is None
    assert gaps.see("hall", 3) == Gap("hall", 2, 2)
    assert gaps.see("kitchen", 501) is None
    assert gaps.missed == 1 and gaps.devices_with_gaps == {"hall"}


def test_repeats_and_late_events_are_not_losses() -> None:
    gaps = SequenceGaps()
    for seq in (1, 2, 3, 3, 2):  # QoS 1 delivers at least once
        assert gaps.see("kitchen", seq) is None
    assert gaps.see("kitchen", 4) is None  # and the count goes on from the newest
    assert (gaps.missed, gaps.repeats, gaps.restarts) == (0, 2, 0)


def test_a_restarted_daemon_counts_from_1_again() -> None:
    gaps = SequenceGaps()
    for seq in range(1, 41):
        gaps.see("kitchen", seq)
    assert gaps.see("kitchen", 1) is None and gaps.see("kitchen", 2) is None
    assert gaps.restarts == 1 and gaps.missed == 0
    # A restart whose first events never arrived: far below the newest, and those are missed.
    for seq in range(3, REPEAT_WINDOW + 100):
        gaps.see("kitchen", seq)
    assert gaps.see("kitchen", 4) == Gap("kitchen", 1, 3)
    assert gaps.restarts == 2 and gaps.missed == 3


def test_events_without_seq_are_not_counted() -> None:
    gaps = SequenceGaps()
    assert gaps.see("kitchen", None) is None and gaps.see("kitchen", 5) is None and gaps.see("kitchen", None) is None
    assert gaps.missed == 0
