"""Who trains which job (naap.rebuild.claims) and the progress every rank adds to (naap.rebuild.progress), on an
in-memory torch.distributed store shared by several simulated ranks and threads."""
import fcntl
import io
import os
import sys
import threading

import pytest
import torch
import torch.distributed as dist

from naap.rebuild.claims import Claims, uses_flock
from naap.rebuild.cluster import Cluster
from naap.rebuild.jobs import Shard, cohorts, make_plan
from naap.rebuild.progress import Progress
from naap.rebuild.recipe import load_recipe
from naap.rebuild.train import EpochMetrics
from naap.rebuild.workspace import Workspace
from tests.runs import SMOKE

JOBS = make_plan(load_recipe(SMOKE)).jobs


def drain(claims: Claims, taken: list, lock: threading.Lock) -> None:
    for job in claims.jobs():
        with lock:
            taken.append(job)


def test_every_job_goes_to_exactly_one_worker_of_one_rank(tmp_path):
    store, stop, taken, lock = dist.HashStore(), threading.Event(), [], threading.Lock()
    ranks = [Claims(JOBS, Workspace(tmp_path), store, local_locks=False, stop=stop) for _ in range(2)]
    workers = [threading.Thread(target=drain, args=(claims, taken, lock)) for claims in ranks for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(j.index for j in taken) == [j.index for j in JOBS]


def test_a_claimed_job_whose_part_is_in_is_skipped(tmp_path):
    ws = Workspace(tmp_path)
    ws.part(JOBS[1]).parent.mkdir()
    ws.part(JOBS[1]).touch()  # another run wrote it after this run's list of what is left
    claims = Claims(JOBS[:3], ws, dist.HashStore(), local_locks=True, stop=threading.Event())
    assert [j.index for j in claims.jobs()] == [0, 2]


def test_a_job_another_run_on_this_host_holds_is_taken_last_once_it_is_free(tmp_path):
    ws = Workspace(tmp_path)
    ws.lock(JOBS[0]).parent.mkdir()
    held = os.open(ws.lock(JOBS[0]), os.O_RDONLY | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # another process's flock: this file description's
    threading.Timer(0.3, os.close, [held]).start()  # that run stops without writing the part
    claims = Claims(JOBS[:3], ws, dist.HashStore(), local_locks=True, stop=threading.Event())
    assert [j.index for j in claims.jobs()] == [1, 2, 0]


def test_a_job_another_run_finishes_meanwhile_is_not_trained_again(tmp_path):
    ws = Workspace(tmp_path)
    ws.lock(JOBS[0]).parent.mkdir()
    held = os.open(ws.lock(JOBS[0]), os.O_RDONLY | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)

    def other_run_finishes():
        ws.part(JOBS[0]).parent.mkdir(exist_ok=True)
        ws.part(JOBS[0]).touch()
        os.close(held)
    threading.Timer(0.3, other_run_finishes).start()
    claims = Claims(JOBS[:3], ws, dist.HashStore(), local_locks=True, stop=threading.Event())
    assert [j.index for j in claims.jobs()] == [1, 2]


def test_stop_ends_the_claims(tmp_path):
    stop = threading.Event()
    claims = Claims(JOBS, Workspace(tmp_path), dist.HashStore(), local_locks=False, stop=stop)
    jobs = claims.jobs()
    assert next(jobs).index == 0
    stop.set()
    assert list(jobs) == []


@pytest.mark.parametrize("world, local_world, shard, expected", [
    (1, 1, None, True),          # one process: other runs on this host are kept off by flock
    (4, 4, None, True),          # torchrun on one node
    (8, 4, None, False),         # two nodes: the store alone (flock is per node or off on Lustre/NFS)
    (1, 1, Shard(0, 2), False),  # a shard: its jobs are its own
])
def test_flock_is_used_only_where_every_rank_shares_one_host_and_no_shard(world, local_world, shard, expected):
    cluster = Cluster(0, world, 0, local_world, torch.device("cpu"), store=None)
    assert uses_flock(cluster, shard) is expected


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def epochs_of(count: int) -> list[EpochMetrics]:
    return [EpochMetrics(e, 0.1, 2.0, 2.0, 0.5, 1.5, 0.5, 1.0) for e in range(1, count + 1)]


def test_rank_0s_bar_counts_the_epochs_of_every_rank_and_the_others_show_none(monkeypatch, capsys):
    monkeypatch.setattr("naap.rebuild.progress.REFRESH_SECONDS", 0.01)
    monkeypatch.setattr(sys, "stderr", Terminal())
    store, stop = dist.HashStore(), threading.Event()
    rank0, rank1 = (Progress(Cluster(rank, 2, rank, 1, torch.device("cpu"), store), jobs_left=2, jobs_total=2,
                             epochs=3, stop=stop) for rank in (0, 1))
    assert not rank0.bar.disable and rank1.bar.disable
    for _ in range(3):
        rank1.epoch()
    rank1.finished(JOBS[0], epochs_of(3), diverged=False, seconds=1.0, new_epochs=3)
    rank0.epoch()  # the last epoch of a job resumed from a checkpoint of 2
    rank0.finished(JOBS[1], epochs_of(3), diverged=False, seconds=1.0, new_epochs=1)
    rank0.close()
    rank1.close()
    assert rank0.bar.n == rank0.bar.total == 6
    assert "6/6" in sys.stderr.getvalue()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[rank 1] arch 1 seed 20220819: max accuracy 0.5000 over 3 epochs, 3 trained here")
    assert lines[0].endswith("(1/2 done)") and lines[1].endswith("(2/2 done)")


def test_a_failure_on_another_rank_stops_this_ranks_trainings(monkeypatch):
    monkeypatch.setattr("naap.rebuild.progress.REFRESH_SECONDS", 0.01)
    store, stop = dist.HashStore(), threading.Event()
    rank0 = Progress(Cluster(0, 2, 0, 1, torch.device("cpu"), store), 1, 1, 3, stop)
    assert not stop.wait(0.1)
    Cluster(1, 2, 0, 1, torch.device("cpu"), store).tell_failure("rank 1: boom")
    assert stop.wait(5)
    rank0.close()


def test_cohorts_are_one_seeds_jobs_in_their_order_chunked():
    """Against a plain grouping loop: smoke's 8 jobs alternate two seeds."""
    seeds = list(dict.fromkeys(job.seed for job in JOBS))
    assert len(seeds) == 2
    for size in (1, 3, 4, 100):
        expected = []
        for seed in seeds:
            mine = [job for job in JOBS if job.seed == seed]
            expected += [mine[start:start + size] for start in range(0, len(mine), size)]
        assert cohorts(JOBS, size) == expected
    assert [[job.index for job in group] for group in cohorts(JOBS, 3)] == [[0, 2, 4], [6], [1, 3, 5], [7]]


def test_every_job_goes_to_exactly_one_cohort_of_one_worker_of_one_rank(tmp_path):
    store, stop, taken, lock = dist.HashStore(), threading.Event(), [], threading.Lock()
    ranks = [Claims(JOBS, Workspace(tmp_path), store, local_locks=False, stop=stop) for _ in range(2)]

    def drain_cohorts(claims: Claims) -> None:
        for group in claims.cohorts(3):
            with lock:
                taken.append(group)
    workers = [threading.Thread(target=drain_cohorts, args=(claims,)) for claims in ranks for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    first = lambda group: group[0].index
    assert sorted(taken, key=first) == sorted(cohorts(JOBS, 3), key=first)


def test_a_cohort_leaves_out_a_member_whose_part_is_in_and_takes_a_busy_one_last_alone(tmp_path):
    ws = Workspace(tmp_path)
    ws.part(JOBS[2]).parent.mkdir()
    ws.part(JOBS[2]).touch()
    ws.lock(JOBS[4]).parent.mkdir()
    held = os.open(ws.lock(JOBS[4]), os.O_RDONLY | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # another run on this host trains job 4, then stops without its part
    threading.Timer(0.3, os.close, [held]).start()
    claims = Claims(JOBS, ws, dist.HashStore(), local_locks=True, stop=threading.Event())
    assert [[job.index for job in group] for group in claims.cohorts(4)] == [[0, 6], [1, 3, 5, 7], [4]]


def test_a_cohorts_members_are_held_while_it_trains(tmp_path):
    ws = Workspace(tmp_path)
    claims = Claims(JOBS, ws, dist.HashStore(), local_locks=True, stop=threading.Event())
    claimed = claims.cohorts(4)  # held while the generator is suspended in the worker's hands
    group = next(claimed)
    for job in JOBS:
        descriptor = os.open(ws.lock(job), os.O_RDONLY | os.O_CREAT)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free = True
        except BlockingIOError:
            free = False
        finally:
            os.close(descriptor)
        assert free == (job not in group), job.name
