"""Spreading client connections evenly over the serving workers (``reconciler serve``).

Every worker accepts from the one listening socket it inherits from gunicorn's master.
The kernel wakes all of them when connections arrive, and the first to run takes all
that are queued. A client that opens its connections in a burst (wrk, a load balancer's
pool, a client pulling layers in parallel) then often lands whole on one worker, and with
keep-alive the connections stay there: one worker answers everything with its threads
while the others idle. On the serving_scaleout bench (16 connections, 2 workers) that
happened in about half the rounds, at ~700 manifest GETs/s against ~1,200 when the
connections were spread 8:8.

So the workers share a small board: an anonymous shared memory map, made by the master
before it forks, with one slot per worker that holds its pid and how many connections
it has open. A worker that holds more than ``SLACK`` connections beyond the least
loaded other worker steps back from accepting for a moment (``PAUSE``) so that the
other one takes the connection; after stepping back it accepts at least one
connection before it may step back again, so a worker that is hung or gone (its slot
not yet cleared) slows accepting down but never stops it.

The master hands out slots (``assign`` in gunicorn's ``pre_fork`` hook, ``release``
in ``child_exit``): no two live workers share one, and a replacement worker gets a
free slot. Each slot is written by its own worker only; the 4-byte cells are read and
written whole, and a torn or stale reading costs at most one uneven accept.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable

#: connections a worker may hold beyond the least loaded other worker before it steps back
SLACK = 1
#: how long a worker steps back (seconds): long enough for another worker to be scheduled
PAUSE = 0.004


class ConnectionBoard:
    """Open-connection counts of the workers, shared across their processes."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        # MAP_SHARED | MAP_ANONYMOUS: the same pages in the master and every forked worker
        self._map = mmap.mmap(-1, max(1, slots) * 8)
        self._cells = memoryview(self._map).cast("i")  # slot i: pid at 2i, open count at 2i+1

    # -- the master -----------------------------------------------------------------------
    def assign(self, taken: Iterable[int]) -> int:
        """A slot no live worker holds, or -1 if every slot is taken (that worker then
        takes no part in the balancing)."""
        used = set(taken)
        for slot in range(self.slots):
            if slot not in used:
                self.release(slot)
                return slot
        return -1

    def release(self, slot: int) -> None:
        """Forget a slot's worker (it exited): its count no longer holds others back."""
        if 0 <= slot < self.slots:
            self._cells[2 * slot] = 0
            self._cells[2 * slot + 1] = 0

    # -- a worker -------------------------------------------------------------------------
    def claim(self, slot: int, pid: int) -> None:
        if 0 <= slot < self.slots:
            self._cells[2 * slot + 1] = 0
            self._cells[2 * slot] = pid

    def publish(self, slot: int, open_connections: int) -> None:
        if 0 <= slot < self.slots:
            self._cells[2 * slot + 1] = open_connections

    def least_other(self, slot: int) -> int | None:
        """The fewest connections any other live worker holds; None when there is none."""
        cells = self._cells
        least: int | None = None
        for other in range(self.slots):
            if other != slot and cells[2 * other]:
                count = cells[2 * other + 1]
                if least is None or count < least:
                    least = count
        return least

    def should_step_back(self, slot: int, open_connections: int) -> bool:
        """True when this worker holds more than ``SLACK`` connections beyond another."""
        if slot < 0:
            return False
        least = self.least_other(slot)
        return least is not None and open_connections > least + SLACK


class Seat:
    """One worker's place on the board, in the worker process: it publishes the worker's
    count and says when to step back, never twice without an accept in between. Without
    a board (one worker) it does nothing."""

    def __init__(self, board: ConnectionBoard | None, slot: int, pid: int) -> None:
        if board is not None:
            board.claim(slot, pid)
        self._board = board
        self._slot = slot
        self._may_step_back = True

    def publish(self, open_connections: int) -> None:
        if self._board is not None:
            self._board.publish(self._slot, open_connections)

    def accepted(self) -> None:
        """A connection was accepted, or none was left: stepping back is allowed again."""
        self._may_step_back = True

    def step_back(self, open_connections: int) -> bool:
        board = self._board
        if board is None or not self._may_step_back or not board.should_step_back(self._slot, open_connections):
            return False
        self._may_step_back = False
        return True
