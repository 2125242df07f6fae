"""The output folder of `naap dataset` (DIR): its files, and the rules that keep them safe.

    recipe.yaml             the recipe DIR is built from; a different one is refused
    parts/<job>.parquet     one finished (architecture, seed): its epoch rows, and its run record
                            (naap.rebuild.provenance.run_record) in the Parquet metadata
    checkpoints/<job>.pt    the last saved epoch of a job being trained
    locks/<job>.lock        flock claims of separate runs on one host (naap.rebuild.claims says when)
    architectures.parquet, epochs.parquet, DATASET.md   the merged tables and their card

The rules: naap writes only inside DIR, and only into a DIR it made (one holding recipe.yaml)
or a new or empty one; a symbolic link among DIR's files or folders is refused, never
followed; every write is atomic (naap._io.atomic_write: a temporary file renamed over the target;
a full disk is one line naming the file). A part is written once and never
replaced; a job whose part is in is never trained again.
"""
from __future__ import annotations

import errno
import fcntl
import math
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import pandas as pd

from naap._io import atomic_write, read_parquet, read_provenance, refuse_first, write_parquet
from naap.bench.space import scheme_hash
from naap.bench.tables import EPOCHS_SCHEMA, PROXIES, check_values, recorded_shape
from naap.errors import NaapError
from naap.rebuild.jobs import Job
from naap.rebuild.recipe import Recipe, load_recipe

# The recipe keys that determine the data: a DIR refuses a recipe that differs in any of them.
DATA_KEYS = ("name", "search_space", "dataset", "training", "split")
FOLDERS = ("parts", "checkpoints", "locks")
MERGED = ("architectures.parquet", "epochs.parquet", "DATASET.md")
# The recipe copies of runs starting at once on a new DIR (adopt), and their temporary files:
# the only files of an --out that is still counted as empty.
RECIPE_COPY = re.compile(r"\.recipe\.[0-9a-f]{32}\.yaml|\.\.recipe\.[0-9a-f]{32}\.yaml\..+\.tmp")
# flock fails with these on filesystems that do not support it (Lustre without -o flock, some NFS setups).
NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class Workspace:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.recipe_copy = self.root / "recipe.yaml"

    def part(self, job: Job) -> Path:
        return self.root / "parts" / f"{job.name}.parquet"

    def checkpoint(self, job: Job) -> Path:
        return self.root / "checkpoints" / f"{job.name}.pt"

    def lock(self, job: Job) -> Path:
        return self.root / "locks" / f"{job.name}.lock"

    def parts_in(self, jobs: list[Job]) -> list[Job]:
        return [job for job in jobs if self.part(job).exists()]

    # --- checks, before anything is written -----------------------------------

    def check(self) -> None:
        """Refuse an --out that is a file, and symbolic links anywhere in DIR."""
        if self.root.exists() and not self.root.is_dir():
            raise NaapError(f"{self.root}: --out: a file, not a folder")
        if not self.root.is_dir():
            return
        inside = [self.root / name for name in ("recipe.yaml", *MERGED, *FOLDERS)]
        inside += [p for folder in FOLDERS if (self.root / folder).is_dir() and not (self.root / folder).is_symlink()
                   for p in (self.root / folder).iterdir()]
        for path in inside:
            if path.is_symlink():
                raise NaapError(f"{path}: a symbolic link; naap writes only inside --out and never follows "
                                f"links there (replace it with a plain file or folder)")

    def check_writable(self) -> None:
        """DIR (or, for a new DIR, the folder it goes into) and its folders must be writable."""
        existing = [p for p in (self.root, *(self.root / f for f in FOLDERS)) if p.is_dir()]
        if not existing:
            parent = next(p for p in self.root.absolute().parents if p.exists())
            existing = [parent]
        for folder in existing:
            if not os.access(folder, os.W_OK | os.X_OK):
                raise NaapError(f"{folder}: --out: not writable (read-only folder or filesystem)")

    def check_recipe(self, recipe: Recipe) -> None:
        """Refuse a DIR made from a recipe that differs from `recipe` in what makes the data."""
        kept = load_recipe(self.recipe_copy)
        differ = [key for key in DATA_KEYS if kept.raw.get(key) != recipe.raw.get(key)]
        if differ:
            raise NaapError(f"{self.recipe_copy}: {self.root} was made from another recipe "
                            f"({', '.join(differ)} differ from {recipe.path}); use another --out")

    def adopt(self, recipe: Recipe) -> None:
        """Keep a copy of the recipe in a new DIR; refuse a DIR made from another recipe."""
        if not self.recipe_copy.exists():
            # recipe.yaml itself may appear meanwhile: another run may be starting on DIR too
            found = sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []
            foreign = [name for name in found if not RECIPE_COPY.fullmatch(name) and name != self.recipe_copy.name]
            if foreign and not self.recipe_copy.exists():
                raise NaapError(f"{self.root}: not empty (it holds {foreign[0]!r:.80}) and not made by `naap dataset` "
                                f"(no recipe.yaml); choose another --out")
            # Linked in, never renamed over: of runs starting at once, the first one's recipe is kept
            # and the others are checked against it.
            mine = self.root / f".recipe.{uuid.uuid4().hex}.yaml"
            atomic_write(mine, lambda tmp: shutil.copyfile(recipe.path, tmp))
            try:
                os.link(mine, self.recipe_copy)
            except FileExistsError:
                pass
            except OSError as exc:
                raise NaapError(f"{self.recipe_copy}: cannot write it ({exc.strerror or exc})") from None
            finally:
                mine.unlink()
        self.check_recipe(recipe)

    # --- parts ----------------------------------------------------------------

    def write_part(self, job: Job, epochs: list, record: dict) -> None:
        """The epoch rows of a finished job (dataclass rows of naap.rebuild.train.EpochMetrics), with its record."""
        rows = pd.DataFrame([asdict(e) for e in epochs], columns=EPOCHS_SCHEMA.names[2:])
        rows.insert(0, "arch_id", job.arch_id)
        rows.insert(1, "seed", job.seed)
        write_parquet(rows, self.part(job), EPOCHS_SCHEMA, provenance=record)
        self.checkpoint(job).unlink(missing_ok=True)

    def read_part(self, job: Job, epochs: int, role: str = "") -> tuple[pd.DataFrame, dict]:
        """The rows and record of `job`'s part, checked to be that job's finished run of `epochs`
        epochs (check_part); `role` begins each message (e.g. "--reuse: ")."""
        path = self.part(job)
        rows, record = read_parquet(path, EPOCHS_SCHEMA), read_provenance(path)
        check_part(path, job, epochs, rows, record, role)
        return rows, record

    # --- locks ----------------------------------------------------------------

    @contextmanager
    def locked(self, path: Path) -> Iterator[bool]:
        """Hold an flock on `path` (created if missing, never through a link) while inside;
        False (not held) if another process holds it."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise NaapError(f"{path}: cannot write it ({exc.strerror or exc})") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held = False
            except OSError as exc:
                if exc.errno in NO_FLOCK:
                    raise NaapError(f"{path}: this filesystem does not support flock; run one `naap dataset` "
                                    f"per folder, torchrun (claims through its store) or --shard") from None
                raise
            else:
                held = True
            yield held
        finally:
            os.close(fd)

    @contextmanager
    def merging(self) -> Iterator[None]:
        """Hold recipe.yaml's flock (a file every DIR has, so a read-only DIR needs no new one):
        one merge at a time on this host, and no tidying of a merge in progress. Where flock is
        not supported, merges are not serialised (one process merges: rank 0, or `naap merge`)."""
        fd = os.open(self.recipe_copy, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno not in NO_FLOCK:
                    raise
            yield
        finally:
            os.close(fd)

    # --- tidying --------------------------------------------------------------

    def tidy(self, jobs: list[Job]) -> None:
        """Remove the checkpoints, locks and temporary files of `jobs` that are finished, and
        the temporary files a kill during a merge left (call it inside `merging()`).

        No process writes for a finished job any more: a claim always looks for the part first."""
        for job in self.parts_in(jobs):
            for path in (self.checkpoint(job), self.lock(job),
                         *(self.root / "checkpoints").glob(f".{job.name}.*.tmp"),
                         *(self.root / "parts").glob(f".{job.name}.*.tmp")):
                path.unlink(missing_ok=True)
        for name in MERGED:
            for path in self.root.glob(f".{name}.*.tmp"):
                path.unlink(missing_ok=True)
        for folder in ("checkpoints", "locks"):
            try:
                (self.root / folder).rmdir()
            except OSError:
                pass  # not empty: jobs not finished yet



# --- what a part must hold ----------------------------------------------------------

NUMBER = (int, float)
# The fields of a part's record (naap.rebuild.provenance.run_record) a merge reads, and their types.
RECORD_TYPES = {"arch_id": int, "seed": int, "arch_hash": str, "diverged": bool, "epochs": int,
                "resumed_epochs": int, "started": NUMBER, "finished": NUMBER, "versions": dict, "settings": dict,
                "dataset": dict, "device": str, "host": str, "rank": int, "world_size": int, "strategy": str,
                "shard": (str, type(None)), "trainings_per_device": int, "threads_per_training": int,
                "flock_claims": bool, "proxies": (dict, type(None))}


def check_part(path: Path, job: Job, epochs: int, rows: pd.DataFrame, record: dict, role: str = "") -> None:
    """Refuse a part that is not `job`'s finished run: its record's fields of their types, its
    arch_id, seed and arch_hash the job's; its rows the job's, epochs 1..n with n the record's
    and the recipe's `epochs` (fewer only where it diverged); every value in the tables' ranges;
    the proxies, where there are some, one finite number for each."""
    for key, kind in RECORD_TYPES.items():
        value = record.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise NaapError(f"{path}: {role}record field '{key}': {'missing' if key not in record else 'wrong type'}, "
                            f"got {value!r:.60}")
    mine = {"arch_id": job.arch_id, "seed": job.seed, "arch_hash": scheme_hash(job.scheme)}
    theirs = {key: record[key] for key in mine}
    if theirs != mine:
        raise NaapError(f"{path}: {role}its record is {theirs}, not {job.name}'s {mine}")
    for column in ("arch_id", "seed"):
        refuse_first(path, rows, rows[column] != mine[column], column,
                     f"{{key}}: not {job.name}'s ({column} {mine[column]})")
    n = len(rows)
    finished = n == record["epochs"] and (n < epochs if record["diverged"] else n == epochs)
    if not finished or sorted(rows["epoch"]) != list(range(1, n + 1)) or not 0 <= record["resumed_epochs"] <= n:
        raise NaapError(f"{path}: {role}epochs: {n} rows, not a finished run of {epochs} epochs "
                        f"(its record: {record['epochs']} epochs, diverged {record['diverged']})")
    check_values(path, rows)
    elapsed = record["finished"] - record["started"]
    if not all(isinstance(v, str) for v in record["versions"].values()) or not 0 <= elapsed < 1e9:
        raise NaapError(f"{path}: {role}record fields 'versions', 'started', 'finished': versions must be text, "
                        f"finished a time after started")
    recorded_shape(path, record)
    if not isinstance(record["dataset"].get("name"), str):
        raise NaapError(f"{path}: {role}record field 'dataset.name': must be text")
    proxies = record["proxies"]
    if proxies is not None:
        values = proxies.get("values")
        finite = lambda v: isinstance(v, NUMBER) and not isinstance(v, bool) and math.isfinite(v)
        if (type(proxies.get("images")) is not int or not isinstance(values, dict) or set(values) != set(PROXIES)
                or not all(map(finite, values.values()))):
            raise NaapError(f"{path}: {role}record field 'proxies': must be images (a whole number) and values, "
                            f"one finite number for each of {', '.join(PROXIES)}")
