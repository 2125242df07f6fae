"""Who trains which job, so that each is trained once.

Within one launch (a single process, or every rank of one torchrun launch on any number of
nodes) a counter in a torch.distributed store hands out the jobs: `store.add("next", 1)` is
atomic across every node, so each job goes to exactly one worker thread of one rank. Under
torchrun the store is the process group's own (its rendezvous store, naap.rebuild.cluster); a single
process uses an in-memory HashStore. A launch that dies leaves no claim behind: the next one
has a new store, finds no part for the jobs that were being trained and resumes their
checkpoints.

Between separate runs on one DIR (several `naap dataset` commands on one host, or one
torchrun on a single node beside them), a job is also held with an flock lock in DIR/locks/
while it trains. These locks are taken only where they are reliable: a single process, or a
torchrun whose ranks all run on one node, and not with --shard. A launch over several nodes
uses the store alone (flock on Lustre or NFS is off, per node, or slow): do not start two of
them on one DIR at once. `--shard` needs no lock: the shards' jobs are disjoint.

After every claim the part is looked for again: another run may have written it meanwhile.
"""
from __future__ import annotations

import queue
import threading
from contextlib import ExitStack, nullcontext
from typing import Iterator

from naap.rebuild.cluster import Cluster
from naap.rebuild.jobs import Job, Shard, cohorts
from naap.rebuild.workspace import Workspace

# How often a worker looks again at a job that another run on this host is training.
BUSY_POLL_SECONDS = 1.0


def uses_flock(cluster: Cluster, shard: Shard | None) -> bool:
    """Whether this launch also holds its jobs with flock: a single process or a torchrun on one
    node, without --shard."""
    return cluster.single_node and shard is None


class Claims:
    def __init__(self, todo: list[Job], ws: Workspace, store, local_locks: bool, stop: threading.Event):
        self.todo, self.ws, self.store, self.local_locks, self.stop = todo, ws, store, local_locks, stop
        self.busy: queue.Queue[Job] = queue.Queue()  # held by another run on this host when we came to them

    def jobs(self) -> Iterator[Job]:
        """The jobs one worker trains, one at a time; each is held until the worker asks for the next.
        Ends when every job is claimed (and every busy one finished), or at `stop`."""
        while not self.stop.is_set() and (index := self.store.add("next", 1) - 1) < len(self.todo):
            job = self.todo[index]
            with self._held(job) as held:
                if not held:
                    self.busy.put(job)
                elif not self.ws.part(job).exists():
                    yield job
        yield from self._busy_jobs()

    def cohorts(self, size: int) -> Iterator[list[Job]]:
        """As jobs(), a cohort at a time (naap.rebuild.jobs.cohorts: up to `size` jobs of one seed, the
        store's counter handing out cohorts): every member is held until the worker asks for the next.
        A member held by another run waits as jobs() does and is trained later, as a cohort of one;
        a member whose part exists is left out."""
        groups = cohorts(self.todo, size)
        while not self.stop.is_set() and (index := self.store.add("next", 1) - 1) < len(groups):
            with ExitStack() as holds:
                members = []
                for job in groups[index]:
                    if not holds.enter_context(self._held(job)):
                        self.busy.put(job)
                    elif not self.ws.part(job).exists():
                        members.append(job)
                if members:
                    yield members
        yield from ([job] for job in self._busy_jobs())

    def _busy_jobs(self) -> Iterator[Job]:
        """Wait for the jobs another run was training (or take them over if it stopped), so that
        every part is in when this run ends and rank 0 can merge."""
        while not self.stop.is_set():
            try:
                job = self.busy.get_nowait()
            except queue.Empty:
                return
            with self._held(job) as held:
                if not held:
                    self.busy.put(job)
                    self.stop.wait(BUSY_POLL_SECONDS)
                elif not self.ws.part(job).exists():
                    yield job

    def _held(self, job: Job):
        return self.ws.locked(self.ws.lock(job)) if self.local_locks else nullcontext(True)
