"""Provenance: what a dataset was made from and with, built in one place (torch-free).

- `versions(*packages)`: Python's version and the installed packages', for every provenance.
- `run_record(...)`: what a part of `naap dataset` keeps in its Parquet metadata: the job, how
  it ended, and the launch that trained it (device, host, rank, world size, strategy, shard,
  trainings per device, engine, cohort size, threads per training, flock claims, `naap.rebuild.settings.describe(device)`,
  versions).
- `rebuilt(...)`: the merged tables' provenance, from the plan and the parts' records.
- `proxies(...)`: a proxies.parquet's provenance.
"""
from __future__ import annotations

import importlib.metadata
import json
import platform
from datetime import datetime, timezone

import naap

# Read by every provenance; commands add the packages whose code made their numbers.
CORE_PACKAGES = ("numpy", "pandas", "pyarrow")
# The merged provenance lists the distinct values of these fields of the parts' launches.
LAUNCH_FIELDS = {"devices": "device", "hosts": "host", "world_sizes": "world_size", "strategies": "strategy",
                 "shards": "shard", "trainings_per_device": "trainings_per_device",
                 "threads_per_training": "threads_per_training", "engines": "engine", "cohort_sizes": "cohort_size",
                 "cohort_size_rules": "cohort_size_rule"}


def versions(*packages: str) -> dict[str, str]:
    """{"python": ..., "naap": ..., numpy, pandas, pyarrow and each of `packages`: version}, read
    from the installed distributions' metadata (nothing is imported); "not installed" if absent."""
    found = {"python": platform.python_version(), "naap": naap.__version__}
    for name in (*CORE_PACKAGES, *packages):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def launch_record(*, device: str, host: str, rank: int, world_size: int, strategy: str, shard: str | None,
                  trainings_per_device: int, threads_per_training: int, flock_claims: bool, settings: dict,
                  dataset: dict, engine: str, cohort_size: int | None, cohort_size_rule: str | None = None,
                  cohort_size_measured: dict | None = None) -> dict:
    """The fields every part trained by one process shares (flock_claims: whether its claims
    also took flock locks, naap.rebuild.claims; engine: runner.engine; cohort_size: the most networks
    a thread trained in lockstep, None for eager; cohort_size_rule: how it was chosen, "fixed", "auto: cpu" or
    "auto: measured", with cohort_size_measured the measurement, naap.rebuild.cohort_size)."""
    return {"device": device, "host": host, "rank": rank, "world_size": world_size, "strategy": strategy,
            "shard": shard, "trainings_per_device": trainings_per_device, "engine": engine, "cohort_size": cohort_size,
            "cohort_size_rule": cohort_size_rule, "cohort_size_measured": cohort_size_measured,
            "threads_per_training": threads_per_training, "flock_claims": flock_claims, "settings": settings,
            "dataset": dataset, "versions": versions("torch", "torchvision")}


def run_record(launch: dict, *, arch_id: int, seed: int, arch_hash: str, diverged: bool, epochs: int,
               resumed_epochs: int, started: float, finished: float, proxies: dict | None = None) -> dict:
    """A part's record; resumed_epochs: the epochs taken from a checkpoint rather than trained here;
    proxies: the zero-cost proxies of the network it started from, {"images": the training images
    they read, "values": {proxy: value}} (main-seed jobs)."""
    return {"arch_id": arch_id, "seed": seed, "arch_hash": arch_hash, "diverged": diverged, "epochs": epochs,
            "resumed_epochs": resumed_epochs, **launch, "started": started, "finished": finished,
            "proxies": proxies}


def rebuilt(*, recipe_name: str, recipe_file: str, recipe_contents: dict, architectures: int, limit: int | None,
            test_items: int, records: list[dict], train_seconds: float) -> dict:
    """The provenance of merged tables rebuilt from `records` (one per part). `limit` is set
    when the tables hold only the first `limit` architectures of the recipe (a --limit try)."""
    started, finished = min(r["started"] for r in records), max(r["finished"] for r in records)
    return {
        "source": f"rebuilt with `naap dataset` from recipe {recipe_name}",
        "kind": "rebuilt",
        "recipe": {"name": recipe_name, "file": recipe_file, "contents": recipe_contents},
        "limit": limit,
        "versions": {name: ", ".join(sorted({r["versions"].get(name, "unknown") for r in records}))
                     for name in records[0]["versions"]},
        "settings": _distinct(r["settings"] for r in records),
        "dataset": records[0]["dataset"],
        "architectures": architectures,
        "seeds": sorted({r["seed"] for r in records}),
        "diverged": [{"arch_id": r["arch_id"], "seed": r["seed"]} for r in records if r["diverged"]],
        "split_test_items": test_items,
        # .get: parts written before a field existed (e.g. engine, cohort_size) do not have it
        **{name: sorted({r.get(key) for r in records if r.get(key) is not None}) for name, key in LAUNCH_FIELDS.items()},
        "started": _iso(started), "finished": _iso(finished),
        "wall_seconds": round(finished - started, 1),
        "train_seconds": round(train_seconds, 1),
        "notes": "wall_seconds spans the first training's start to the last one's end, pauses included; "
                 "train_seconds sums the epochs' seconds over all devices; settings lists the distinct "
                 "naap.rebuild.settings in effect (one per kind of device).",
    }


def proxies(*, seed: int | str, batch_size: int, shape: dict, data: str, data_free: bool, torch: str,
            hardware: dict | None) -> dict:
    """The provenance of a proxies.parquet (naap.rebuild.proxies), from `naap proxies` or a rebuild;
    shape: in_channels, input_size, num_classes; torch: the version that computed them;
    hardware: the CPU they were computed on (naap.rebuild.settings.cpu_record), where known."""
    return {"seed": seed, "batch_size": batch_size, "device": "cpu", "threads": 1, **shape,
            "data": data, "data_free": data_free, "torch": torch, "hardware": hardware,
            "definitions": "see naap/rebuild/proxies.py (synflow: all-ones input; zen: Gaussian input, N(0, 1) weights; "
                           "snip, grad_norm, jacob_cov, naswot: one batch)"}


def training_images(count: int, recipe: str, dataset: str) -> str:
    """How a proxies provenance names the batch its data-reading proxies read."""
    return f"the first {count} training images of recipe {recipe} ({dataset}), normalised as for training"


def _distinct(dicts) -> list[dict]:
    unique = {json.dumps(d, sort_keys=True): d for d in dicts}
    return [unique[key] for key in sorted(unique)]


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
