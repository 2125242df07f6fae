"""`naap leaderboard` (naap.cli.leaderboard): rank accuracy predictors on a dataset directory and publish the results."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from naap._io import read_provenance
from naap.bench.tables import PROXIES_FILE, load_proxies, load_tables
from naap.board import ceiling, environment, external, features, predictors, protocols, report
from naap.escape import datum, plain_line
from naap.board.folder import check_out
from naap.board.page import build_page
from naap.board.summary import summarise
from naap.errors import NaapError
from naap.resources import NAAP440, shipped


def run(args: argparse.Namespace, budgets: list[int], chosen_protocols: list[str]) -> int:
    """Rank the predictors that `args` (naap.cli.leaderboard) select and write the board into args.out."""
    out = Path(args.out)
    check_out(out)
    chosen = predictors.select_predictors(args.predictor_set, args.predictor, none_needed=bool(args.predictions))
    data_dir = shipped(NAAP440) if args.data_dir is None else Path(args.data_dir)
    source = str(data_dir)
    tables = load_tables(data_dir)
    dataset_provenance = read_provenance(data_dir / "architectures.parquet")
    proxies = load_proxies(data_dir)
    notices = []
    if proxies is None:
        asked = [p.name for p in chosen if p.features in features.PROXY_SETS and p.name in args.predictor]
        if asked:
            raise NaapError(f"{source}: predictor '{asked[0]}' reads the zero-cost proxies and {source} has no "
                            f"{PROXIES_FILE} (write it with `naap proxies {source} --data-free`)")
        left_out = [p.name for p in chosen if p.features in features.PROXY_SETS]
        chosen = [p for p in chosen if p.features not in features.PROXY_SETS]
        if left_out:
            notices.append(f"No zero-cost proxies in {datum(source)} (`naap proxies {datum(source)} --data-free` "
                           f"writes them): left out {', '.join(map(datum, left_out))}.")
        if not chosen and not args.predictions:
            raise NaapError(f"{source}: every predictor selected reads the zero-cost proxies, which it does not have")
    frame = features.wide_frame(tables, None if proxies is None else proxies[0], source)
    frame, excluded = features.complete_curves(frame)
    diverged = int(tables.architectures["diverged"].sum())
    if excluded:
        notices.append(f"Left out {len(excluded)} architecture(s) whose run finished no epoch (diverged in epoch 1): "
                       f"ModelId {', '.join(map(str, excluded[:10]))}{' ...' if len(excluded) > 10 else ''}.")
    if diverged:
        notices.append(f"{diverged} architecture(s) diverged in training: their curves are carried forward from "
                       "their last finished epoch; their target is the dataset's max_accuracy (best finished epoch).")
    if len(frame) < 2:
        raise NaapError(f"{source}: {len(frame)} architecture(s) with a finished epoch: nothing to rank")
    outside, outside_results, outside_predictions = external.rank(
        args.predictions, frame, budgets, chosen_protocols, args.cv_repeats, {p.name for p in chosen}, source)
    outcome = protocols.run_protocols(frame, chosen, budgets, chosen_protocols, repeats=args.cv_repeats,
                                      jobs=args.jobs, progress=not args.quiet, source=source)
    outcome = external.with_external(outcome, outside_results, outside_predictions)
    chosen = chosen + outside
    notices += outcome.notices
    for (protocol, predictor), rows in outcome.skipped.groupby(["protocol", "predictor"], sort=False):
        notices.append(f"Skipped {datum(predictor)} under {protocol} at budget(s) "
                       f"{', '.join(map(str, sorted(rows['budget'])))}: {rows['reason'].iloc[0]}.")
    if outcome.results.empty:
        why = plain_line(notices[-1]) if notices else "no fits"
        raise NaapError(f"{source}: no predictor could be fitted ({why})")
    for line in notices:
        print(f"naap: note: {plain_line(line)}", file=sys.stderr)
    summary = summarise(outcome.results)
    folds = (protocols.cv_test_folds(frame, args.cv_repeats) if "cv" in chosen_protocols
             else [frame["ModelId"].to_numpy()])
    estimate = ceiling.noise_ceiling(tables, folds)
    line = ceiling.describe(estimate, None if estimate else ceiling.reference_ceilings(tables, folds), len(folds))
    command = shlex.join(["naap", "leaderboard", str(data_dir), "--out", str(args.out), "--protocol",
                          ",".join(chosen_protocols), "--budgets", ",".join(map(str, budgets)),
                          "--predictor-set", args.predictor_set,
                          *[part for spec in args.predictor for part in ("--predictor", spec)],
                          *[part for spec in args.predictions for part in ("--predictions", spec)],
                          "--cv-repeats", str(args.cv_repeats)])
    computed_with = environment.record()
    provenance = {"dataset": source, "dataset_provenance": dataset_provenance, "computed_with": computed_with,
                  "proxies_provenance": None if proxies is None else proxies[1],
                  "budgets": budgets, "protocols": chosen_protocols, "cv_repeats": args.cv_repeats,
                  "predictors": [p.name for p in chosen], "excluded_architectures": excluded,
                  "notices": [plain_line(line) for line in notices]}
    page = build_page(outcome.results, outcome.predictions, summary, chosen, command,
                      environment.describe(computed_with), notices, line,
                      None if proxies is None else proxies[1], features.recorded_epochs(frame))
    written = report.write_leaderboard(out, outcome.results, outcome.predictions, summary, page, provenance)
    for text in page.headline:
        print(plain_line(text))
    print(f"wrote {len(written)} files to {args.out}/")
    return 0

