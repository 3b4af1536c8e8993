"""The connection board the serving workers share (``reconciler.server.balance``)."""

from __future__ import annotations

import os

from reconciler.server.balance import SLACK, ConnectionBoard


def test_the_master_hands_out_free_slots_and_takes_them_back() -> None:
    board = ConnectionBoard(3)
    assert board.assign([]) == 0
    assert board.assign([0]) == 1
    assert board.assign([1, 0]) == 2
    assert board.assign([0, 1, 2]) == -1  # full: that worker takes no part
    board.claim(1, 4242)
    board.publish(1, 9)
    board.release(1)
    assert board.least_other(0) is None  # a released slot holds nobody back
    assert board.assign([0, 2]) == 1


def test_a_worker_steps_back_only_when_it_holds_more_than_its_share() -> None:
    board = ConnectionBoard(4)
    board.claim(0, 100)
    board.claim(1, 101)
    board.publish(1, 3)
    assert board.least_other(0) == 3
    assert not board.should_step_back(0, 3 + SLACK)
    assert board.should_step_back(0, 3 + SLACK + 1)
    # the least loaded other worker counts, unclaimed slots do not
    board.claim(2, 102)
    board.publish(2, 0)
    assert board.least_other(0) == 0
    assert board.should_step_back(0, SLACK + 1)
    # alone, or without a slot, a worker never steps back
    assert not ConnectionBoard(2).should_step_back(0, 1000)
    assert not board.should_step_back(-1, 1000)


def test_counts_are_seen_across_a_fork() -> None:
    board = ConnectionBoard(2)
    board.claim(0, os.getpid())
    pid = os.fork()
    if pid == 0:  # the child plays a worker: its count must reach the parent
        board.claim(1, os.getpid())
        board.publish(1, 7)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert board.least_other(0) == 7
