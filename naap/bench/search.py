"""Simulated search: NAS and multi-fidelity HPO methods run on a benchmark's tables in seconds.

`Objective(bench).evaluate(arch, epochs)` "trains" an architecture for `epochs` by looking up its
test accuracy after that epoch (mean over the seeds) and charges what reaching it costs:

- "seconds": the measured epoch_seconds, summed over the epochs, where the dataset records them
  (a rebuild): each epoch's mean over the seeds that reached it (an epoch that no seed reached,
  after a divergence, at the architecture's mean epoch);
- "flop" otherwise (the published release records no time): every epoch costs
  2 FLOP per MAC x num_macs x (3 x training images + test images): training at three times the
  forward cost, plus a forward pass over the test images (docs/benchmark.md, section Scale).
  NAAP-440: 50,000 + 10,000 CIFAR-10 images.

With `resume=True` (the default) a second evaluation of an architecture continues its training,
so it costs only the epochs beyond those already paid for; asking for fewer epochs is free (the
accuracy was logged on the way). An epoch a diverged run never reached has accuracy 0.

The objective keeps a trace: every evaluation with its cost, the cumulative cost, the incumbent
(the architecture with the highest accuracy observed so far) and the regret (the best final
accuracy in the dataset minus the incumbent's final accuracy, final meaning after the last
epoch). With a `budget` an evaluation that would go past it raises BudgetExhausted and is not
charged. The reference optimisers (random search, successive halving, Hyperband) stop there.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from naap.errors import InvalidValue

COSTS = ("auto", "seconds", "flop")


class BudgetExhausted(Exception):
    """The evaluation asked for would take the objective past its budget; nothing was charged."""


@dataclass(frozen=True)
class Evaluation:
    arch_id: int
    epochs: int
    accuracy: float   # test accuracy after `epochs`, a fraction
    cost: float       # charged for this evaluation, in the objective's unit
    spent: float      # cumulative cost so far
    incumbent: int    # arch_id with the highest accuracy observed so far
    regret: float     # best final accuracy of the dataset minus the incumbent's final accuracy


class Objective:
    """Look-up "training" on a naap.bench.query.Benchmark, with a cost, an optional budget and a trace."""

    def __init__(self, bench, budget: float | None = None, cost: str = "auto", resume: bool = True):
        if cost not in COSTS:
            raise InvalidValue(f"cost {cost!r}: must be one of {', '.join(COSTS)}")
        if budget is not None and not budget > 0:
            raise InvalidValue(f"budget {budget!r}: must be a positive cost, or None for no limit")
        epochs = bench.epochs.reset_index()  # arch_id, the index of every Benchmark frame, as a column to pivot on
        timed = epochs["epoch_seconds"].notna().all()
        if cost == "seconds" and not timed:
            raise InvalidValue(f"cost 'seconds': {bench.name} records no epoch_seconds for some epochs; use 'flop'")
        self.bench, self.budget, self.resume = bench, budget, resume
        self.unit = "seconds" if cost == "seconds" or (cost == "auto" and timed) else "FLOP"
        self.arch_ids = bench.ids()
        self.max_epochs = bench.num_epochs
        runs = pd.MultiIndex.from_product([self.arch_ids, bench.seeds], names=["arch_id", "seed"])
        grid = lambda column: epochs.pivot(index=["arch_id", "seed"], columns="epoch", values=column).reindex(
            index=runs, columns=range(1, self.max_epochs + 1))
        # accuracy[i, k - 1]: architecture i after k epochs, mean over seeds (0 for an epoch never reached)
        self.accuracy = grid("test_accuracy").fillna(0.0).groupby(level="arch_id").mean().to_numpy()
        if self.unit == "seconds":
            seconds = grid("epoch_seconds").groupby(level="arch_id").mean()
            per_epoch = seconds.T.fillna(seconds.mean(axis=1)).T.to_numpy()
        else:
            flop = bench.cost()["epoch_flop"].to_numpy()
            per_epoch = np.repeat(flop[:, None], self.max_epochs, axis=1)
        # cumulative[i, k]: the cost of the first k epochs of architecture i (k = 0 ... max_epochs)
        self.cumulative = np.concatenate([np.zeros((len(self.arch_ids), 1)), per_epoch.cumsum(axis=1)], axis=1)
        self.final = self.accuracy[:, -1]
        self.best_final = float(self.final.max())
        self.spent = 0.0
        self._paid: dict[int, int] = {}
        self._incumbent: tuple[float, int] | None = None  # (accuracy, row)
        self._trace: list[Evaluation] = []

    def evaluate(self, arch, epochs: int | None = None) -> Evaluation:
        """Accuracy of `arch` (any key Benchmark takes) after `epochs` (default: all), and its cost."""
        arch_id = self.bench.arch_id(arch)
        epochs = self.bench.valid_epoch(epochs)
        row = int(np.searchsorted(self.arch_ids, arch_id))
        paid = self._paid.get(arch_id, 0) if self.resume else 0
        charge = float(self.cumulative[row, max(epochs, paid)] - self.cumulative[row, paid])
        if self.budget is not None and self.spent + charge > self.budget:
            raise BudgetExhausted(f"{arch_id} for {epochs} epochs costs {charge:.4g} {self.unit}; "
                                  f"{self.budget - self.spent:.4g} of {self.budget:.4g} left")
        self.spent += charge
        self._paid[arch_id] = max(epochs, paid)
        accuracy = float(self.accuracy[row, epochs - 1])
        if self._incumbent is None or accuracy > self._incumbent[0]:
            self._incumbent = (accuracy, row)
        incumbent = self._incumbent[1]
        evaluation = Evaluation(arch_id, epochs, accuracy, charge, self.spent, int(self.arch_ids[incumbent]),
                                self.best_final - float(self.final[incumbent]))
        self._trace.append(evaluation)
        return evaluation

    @property
    def incumbent(self) -> int | None:
        """arch_id of the highest accuracy observed so far (None before the first evaluation)."""
        return None if self._incumbent is None else int(self.arch_ids[self._incumbent[1]])

    @property
    def trace(self) -> pd.DataFrame:
        """Every evaluation in order: arch_id, epochs, accuracy, cost, spent, incumbent, regret."""
        return pd.DataFrame([asdict(e) for e in self._trace], columns=list(Evaluation.__dataclass_fields__))


def regret_at(trace: pd.DataFrame, costs) -> np.ndarray:
    """The regret of a trace once `costs` had been spent (NaN before its first evaluation)."""
    position = np.searchsorted(trace["spent"].to_numpy(), np.asarray(costs, dtype=float), side="right") - 1
    regret = trace["regret"].to_numpy()
    return np.where(position >= 0, regret[np.maximum(position, 0)], np.nan)


# --- reference optimisers -------------------------------------------------------------------------

def random_search(objective: Objective, seed: int = 0, epochs: int | None = None) -> int | None:
    """Architectures in a random order, each trained for `epochs` (default: all), until the budget
    is spent or every one was tried. Returns the incumbent's arch_id."""
    try:
        for arch_id in np.random.default_rng(seed).permutation(objective.arch_ids):
            objective.evaluate(int(arch_id), epochs)
    except BudgetExhausted:
        pass
    return objective.incumbent


def rungs(max_epochs: int, min_epochs: int, eta: int) -> list[int]:
    """The epochs of successive halving's rungs: max_epochs / eta^i, rounded, down to min_epochs.
    NAAP-440 (90 epochs), min_epochs 3, eta 3: [3, 10, 30, 90]."""
    if not 1 <= min_epochs <= max_epochs or eta < 2:
        raise InvalidValue(f"min_epochs {min_epochs}, eta {eta}: need 1 <= min_epochs <= {max_epochs} and eta >= 2")
    count = int(math.log(max_epochs / min_epochs, eta) + 1e-9) + 1
    return sorted({max(1, round(max_epochs / eta ** i)) for i in range(count)})


def successive_halving(objective: Objective, archs, min_epochs: int = 3, eta: int = 3) -> int:
    """One bracket on `archs`: train all of them to the first rung, keep the best 1/eta (at least
    one), train those to the next rung, ... until the last rung (all epochs). Returns the arch_id
    that is best at the last rung. Raises BudgetExhausted where the budget ends mid-bracket."""
    survivors = [objective.bench.arch_id(a) for a in archs]
    for position, epochs in enumerate(rungs(objective.max_epochs, min_epochs, eta)):
        if position:
            survivors = survivors[:max(1, len(survivors) // eta)]
        scores = [objective.evaluate(a, epochs).accuracy for a in survivors]
        survivors = [survivors[i] for i in np.argsort(-np.asarray(scores), kind="stable")]
    return survivors[0]


def _brackets(objective: Objective, seed: int, sizes_and_rungs) -> int | None:
    """Brackets of successive halving on architectures drawn without replacement in a random
    order, (size, min_epochs) after (size, min_epochs), until the budget is spent or none is left."""
    pool = [int(a) for a in np.random.default_rng(seed).permutation(objective.arch_ids)]
    try:
        while pool:
            for size, min_epochs, eta in sizes_and_rungs:
                bracket, pool = pool[:size], pool[size:]
                if bracket:
                    successive_halving(objective, bracket, min_epochs, eta)
    except BudgetExhausted:
        pass
    return objective.incumbent


def repeated_successive_halving(objective: Objective, seed: int = 0, min_epochs: int = 3, eta: int = 3,
                                size: int | None = None) -> int | None:
    """Successive halving brackets of `size` architectures (default eta^(rungs - 1), one survivor
    at the end: 27 on NAAP-440 with the defaults) until the budget is spent. Returns the incumbent."""
    size = size or eta ** (len(rungs(objective.max_epochs, min_epochs, eta)) - 1)
    return _brackets(objective, seed, [(size, min_epochs, eta)])


def hyperband(objective: Objective, seed: int = 0, min_epochs: int = 1, eta: int = 3) -> int | None:
    """Hyperband (Li et al., 2018): brackets of successive halving from the most exploratory (many
    architectures from min_epochs) to plain training (few, all epochs), repeated until the budget
    is spent. Bracket s of s_max starts at rung s_max - s with ceil((s_max + 1) / (s + 1) x eta^s)
    architectures. Returns the incumbent."""
    ladder = rungs(objective.max_epochs, min_epochs, eta)
    s_max = len(ladder) - 1
    plan = [(math.ceil((s_max + 1) / (s + 1) * eta ** s), ladder[s_max - s], eta) for s in range(s_max, -1, -1)]
    return _brackets(objective, seed, plan)
