"""naap.rebuild.cohort_size: runner.cohort_size auto. On the CPU, the arithmetic with the device's memory
played by monkeypatched torch.cuda functions, checked against a brute-force search for the largest K that
fits; the largest member against activations counted by forward hooks on the real networks. On a GPU
(skipped without one), a K measured on the smoke recipe, and a cohort of that K trained within it."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from naap.bench.counts import count_activations, count_params
from naap.bench.network import build_network
from naap.errors import NaapError
from naap.rebuild import cohort_size as C
from naap.rebuild import settings
from naap.rebuild.cohort import train_cohort
from naap.rebuild.datasets import load_dataset, write_synthetic_cifar10
from naap.rebuild.jobs import make_plan
from naap.rebuild.recipe import DatasetSpec, Training, load_recipe
from tests.conftest import REPO

GiB, MiB, MB = 1 << 30, 1 << 20, 10 ** 6
TRAINING = Training(epochs=1, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False,
                    lr_factor=0.1, lr_cycle=3, mean=0.5, std=0.5, seeds=(7,))
NAAP440 = make_plan(load_recipe("naap440")).jobs  # 440 jobs of one seed
SMOKE = make_plan(load_recipe(REPO / "recipes" / "smoke.yaml")).jobs  # 2 seeds x 4 jobs
CIFAR = SimpleNamespace(in_channels=3, input_size=32, num_classes=10)


def fitting_k(available, total, member, streams, trainings_per_device, jobs):
    """Brute force: the largest K up to `jobs` such that every thread's K members, the headroom
    (the larger of 2 GiB and a tenth of the device) and a 32 MiB cuBLAS workspace per stream fit."""
    k = 0
    while k < jobs and ((k + 1) * member * trainings_per_device + max(2 * GiB, total / 10)
                        + streams * 32 * MiB <= available):
        k += 1
    return k


@pytest.fixture
def device(monkeypatch):
    """A fake CUDA device: free and total memory, its allocator's reserved and allocated bytes, and
    the bytes a member's measured step takes (the scheme measured is noted)."""
    state = {"free": 70 * GiB, "total": 80 * GiB, "reserved": GiB, "allocated": GiB // 2,
             "member": 35 * MB, "measured": []}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (state["free"], state["total"]))
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda d: {"reserved_bytes.all.current": state["reserved"],
                                                                "allocated_bytes.all.current": state["allocated"]})

    def measured(scheme, data, training, seed, dev):
        state["measured"].append(scheme)
        return state["member"]

    monkeypatch.setattr(C, "member_bytes", measured)
    return state


def plan(jobs, engine="cohort", per_device=1, asked="auto"):
    return C.plan_cohort_size(asked, jobs, CIFAR, TRAINING, torch.device("cuda", 0), engine, per_device,
                              "r.yaml: runner.cohort_size")


@pytest.mark.parametrize("free,total,member,engine,per_device", [
    (78 * GiB, 80 * GiB, 35 * MB, "cohort", 1),           # an H100: every job of the seed at once
    (78 * GiB, 80 * GiB, 300 * MB, "cohort-graphs", 1),   # members too large for all 440
    (15 * GiB, 16 * GiB, 35 * MB, "cohort", 1),           # 16 GB: the 2 GiB floor of the headroom
    (15 * GiB, 16 * GiB, 35 * MB, "cohort-graphs", 1),    # 10 streams' workspaces
    (15 * GiB, 16 * GiB, 35 * MB, "cohort", 3),           # three cohort threads share the device
])
def test_k_is_the_most_members_that_fit_beside_the_headroom(device, free, total, member, engine, per_device):
    device.update(free=free, total=total, member=member)
    sized = plan(NAAP440, engine, per_device)
    streams = per_device * (10 if engine == "cohort-graphs" else 1)
    available = free + device["reserved"] - device["allocated"]
    assert sized.k == fitting_k(available, total, member, streams, per_device, 440) >= 1
    assert sized.rule == "auto: measured" and sized.detail["member_bytes"] == member
    if (free, member) == (78 * GiB, 35 * MB):
        assert sized.k == 440
    else:
        assert sized.k < 440


def test_k_is_never_more_than_the_jobs_of_one_seed(device):
    sized = plan(SMOKE)
    assert sized.k == 4 and sized.detail["jobs"] == 4 and len(SMOKE) == 8


def test_a_device_where_one_member_does_not_fit_is_refused_in_one_line(device):
    device.update(free=2 * GiB + 100 * MiB, total=16 * GiB, reserved=0, allocated=0, member=120 * MiB)
    assert fitting_k(device["free"], 16 * GiB, 120 * MiB, 1, 1, 440) == 0
    with pytest.raises(NaapError) as err:
        plan(NAAP440)
    message = str(err.value)
    assert "\n" not in message and message.startswith("r.yaml: runner.cohort_size: auto: one member (arch")
    assert "needs 120.0 MiB on cuda:0" in message


def test_the_measured_member_is_the_one_with_the_largest_activations(device):
    """Oracle: the elements of every convolution's output, counted by forward hooks on the built
    network for one 3x32x32 image (every 4th NAAP-440 architecture and the smoke ones)."""
    jobs = NAAP440[::4] + SMOKE

    def hooked(scheme):
        net, seen = build_network(scheme), []
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                module.register_forward_hook(lambda m, i, out: seen.append(out.numel()))
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, 32, 32))
        return sum(seen)

    counted = {job.scheme: hooked(job.scheme) for job in jobs}
    assert all(counted[job.scheme] == count_activations(job.scheme) for job in jobs)
    plan(jobs)
    assert len(device["measured"]) == 1
    assert counted[device["measured"][0]] == max(counted.values())
    assert len(set(counted.values())) > 10  # the sample tells architectures apart


def test_on_the_cpu_k_is_fixed_and_no_memory_is_read(monkeypatch):
    for name in ("mem_get_info", "memory_stats", "max_memory_allocated", "reset_peak_memory_stats"):
        monkeypatch.setattr(torch.cuda, name, lambda *a, name=name: pytest.fail(f"{name} on the CPU"))
    cpu = torch.device("cpu")
    assert C.plan_cohort_size("auto", SMOKE, CIFAR, TRAINING, cpu, "cohort", 2, "r") == C.CohortSize(4, "auto: cpu")
    assert C.plan_cohort_size(7, SMOKE, CIFAR, TRAINING, cpu, "cohort", 2, "r") == C.CohortSize(7, "fixed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    settings.apply("cpu")
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar10(root, train_size=200, test_size=64)
    return load_dataset(DatasetSpec("cifar10-folder", root=str(root)), TRAINING)


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_a_member_is_its_step_peak_plus_one_momentum_buffer_per_parameter(monkeypatch, data, momentum):
    """The allocator's peak is played (777 bytes above the base); the optimizer state against
    naap.bench.counts.count_params (4-byte floats), none without momentum."""
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d=None: 1000)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: 1000 + 777)
    scheme = SMOKE[0].scheme
    training = Training(**{**vars(TRAINING), "momentum": momentum})
    got = C.member_bytes(scheme, data, training, 7, torch.device("cpu"))
    assert got == 777 + (4 * count_params(scheme) if momentum else 0) and calls == ["reset"]


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_gpu
def test_a_measured_k_on_the_smoke_recipe_trains_within_its_estimate(tmp_path):
    """A real K for the smoke recipe's jobs on cuda:0; a cohort of K members of one seed then trains an
    epoch with no failed allocation, its peak above the base within K x the measured bytes per member."""
    device = torch.device("cuda", 0)
    settings.apply(device)
    write_synthetic_cifar10(tmp_path, train_size=1024, test_size=512)
    gpu_data = load_dataset(DatasetSpec("cifar10-folder", root=str(tmp_path)), TRAINING, device=device)
    sized = C.plan_cohort_size("auto", SMOKE, gpu_data, TRAINING, device, "cohort", 1, "smoke")
    assert sized.k == 4 and sized.rule == "auto: measured"  # an H100 holds every smoke job of one seed
    largest = C.largest_member(SMOKE, gpu_data)
    assert sized.detail["member_bytes"] > 3 * 4 * count_params(largest.scheme)  # weights, gradients, momentum
    members = [job.scheme for job in SMOKE if job.seed == SMOKE[0].seed][: sized.k]
    torch.cuda.synchronize(device)
    ooms = torch.cuda.memory_stats(device).get("num_ooms", 0)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    results = train_cohort(members, gpu_data, TRAINING, SMOKE[0].seed, device=device)
    assert len(results) == sized.k and all(len(r.epochs) == 1 for r in results)
    assert torch.cuda.max_memory_allocated(device) - base <= sized.k * sized.detail["member_bytes"] + 64 * MiB
    assert torch.cuda.memory_stats(device).get("num_ooms", 0) == ooms
