"""The progress of `naap dataset`: one overall bar with ETA on rank 0, a line per finished job.

Every rank adds its trained epochs to a counter in the launch's store (naap.rebuild.cluster); rank 0's
bar shows that counter over the epochs of every job left at the start (epochs resumed from
a checkpoint or cut by a divergence count as done when their job ends). The other ranks
show no bar; each prints one line per job it finished, prefixed by its rank. A watcher
thread on every rank refreshes the bar and stops the rank's trainings at their next epoch
when another rank has failed.
"""
from __future__ import annotations

import sys
import threading

from tqdm import tqdm

from naap.rebuild.cluster import Cluster
from naap.rebuild.jobs import Job

REFRESH_SECONDS = 0.5


class Progress:
    def __init__(self, cluster: Cluster, jobs_left: int, jobs_total: int, epochs: int, stop: threading.Event):
        self.cluster, self.store, self.epochs, self.stop = cluster, cluster.store, epochs, stop
        self.jobs_total, self.jobs_before = jobs_total, jobs_total - jobs_left
        self.bar = tqdm(total=jobs_left * epochs, unit="epoch", desc="training", dynamic_ncols=True,
                        file=sys.stderr, disable=True if cluster.rank else None)
        self.closed = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def epoch(self) -> None:
        self.store.add("epochs", 1)

    def finished(self, job: Job, epochs: list, diverged: bool, seconds: float, new_epochs: int) -> None:
        """A job's part is written: count the epochs it did not train here, print its line."""
        self.store.add("epochs", self.epochs - new_epochs)
        done = self.jobs_before + self.store.add("jobs", 1)
        outcome = [f"DIVERGED in epoch {len(epochs) + 1}"] if diverged else []
        if epochs:
            outcome.append(f"max accuracy {max(e.test_accuracy for e in epochs):.4f} over {len(epochs)} epochs")
        line = (f"[rank {self.cluster.rank}] arch {job.arch_id} seed {job.seed}: {', '.join(outcome)}, "
                f"{new_epochs} trained here in {seconds:.1f} s ({done}/{self.jobs_total} done)")
        tqdm.write(line)

    def close(self) -> None:
        self.closed.set()
        self.watcher.join()
        self._refresh()
        self.bar.close()

    def _watch(self) -> None:
        while not self.closed.wait(REFRESH_SECONDS):
            self._refresh()
            if self.cluster.failed_elsewhere():
                self.stop.set()

    def _refresh(self) -> None:
        if not self.bar.disable:
            self.bar.update(self.store.add("epochs", 0) - self.bar.n)
