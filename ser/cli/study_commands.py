"""``python -m ser study``: list, run (queue the missing runs), status, report, ship."""

from __future__ import annotations

import json
import sys
import time


def add_commands(sub) -> None:
    s = sub.add_parser("study", help="studies: grids of runs over seeds that test the seeds' "
                       "claims (list, run, status, report, ship)")
    ssub = s.add_subparsers(dest="study_command", required=True)
    ls = ssub.add_parser("list", help="the built-in studies")
    ls.set_defaults(func=cmd_list)

    r = ssub.add_parser("run", help="queue the study's missing runs (runs that already exist "
                        "with the same options are adopted) and follow them")
    r.add_argument("name")
    r.add_argument("--data", help="corpus folder (default: SER_DATA_DIR, data/, or the demo "
                   "corpus)")
    r.add_argument("--max-parallel", type=int, default=1, help="runs allowed at once")
    r.add_argument("--threads", type=int, default=None, help="CPU threads per run "
                   "(default: every core, shared equally with --max-parallel)")
    r.add_argument("--device", default=None, help="auto | cpu | cuda | mps")
    r.add_argument("--detach", action="store_true", help="queue and return at once")
    r.set_defaults(func=cmd_run)

    for name, helptext, fn in (("status", "done / running / queued / missing", cmd_status),
                               ("report", "mean ± std over seeds per cell, and a verdict per "
                                          "claim", cmd_report),
                               ("ship", "write the report to models/studies/NAME.json for "
                                        "the app", cmd_ship)):
        p = ssub.add_parser(name, help=helptext)
        p.add_argument("name")
        p.add_argument("--data", help="the corpus the study ran on (as given to `run`)")
        if name == "report":
            p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
            p.add_argument("--markdown", action="store_true", help="print the table and "
                           "verdicts as Markdown (for the README)")
            p.add_argument("--shipped", action="store_true", help="the shipped report "
                           "(models/studies/NAME.json) instead of the runs")
        p.set_defaults(func=fn)


def cmd_list(args) -> int:
    from ser import studies

    for name in studies.list_studies():
        s = studies.get_study(name)
        n = len(s.cells()) * len(s.seeds)
        print(f"{name:<20} {len(s.cells())} cells × {len(s.seeds)} seeds = {n} runs · "
              f"{s.title}")
        print(f"{'':<20} {s.schedule}")
    return 0


def _counts_line(c: dict) -> str:
    return (f"{c['finished']}/{c['total']} finished, {c['running']} running, "
            f"{c['queued']} queued, {c['missing']} missing")


def cmd_run(args) -> int:
    from ser import studies

    study = studies.get_study(args.name)
    new = studies.launch(study, args.data, max_parallel=args.max_parallel,
                         threads=args.threads, device=args.device)
    counts = studies.progress(studies.plan(study, args.data))
    print(f"{study.name}: queued {len(new)} new run(s); {_counts_line(counts)}")
    if args.detach:
        print(f"follow with `python -m ser study status {study.name}"
              + (f" --data {args.data}`" if args.data else "`"))
        return 0
    from tqdm import tqdm

    bar = tqdm(total=counts["total"], desc=study.name, unit="run", file=sys.stderr,
               disable=None)
    try:
        while True:
            counts = studies.progress(studies.plan(study, args.data))
            bar.n = counts["finished"]
            bar.set_postfix(running=counts["running"], queued=counts["queued"],
                            missing=counts["missing"])
            bar.refresh()
            if not counts["running"] and not counts["queued"]:
                break
            time.sleep(5)
    except KeyboardInterrupt:
        bar.close()
        print("stopped following; the runs go on in the background "
              f"(`python -m ser study status {study.name}`)", file=sys.stderr)
        return 130
    bar.close()
    print(_counts_line(counts))
    if counts["missing"]:
        print(f"{counts['missing']} run(s) failed or were cancelled; `python -m ser study run "
              f"{study.name}` launches them again", file=sys.stderr)
    return 0 if not counts["missing"] else 1


def cmd_status(args) -> int:
    from ser import studies

    study = studies.get_study(args.name)
    planned = studies.plan(study, args.data)
    print(f"{study.name}: {_counts_line(studies.progress(planned))}")
    for p in planned:
        rid = p.run["run_id"] if p.run else ""
        print(f"  {studies.cell_label(p.cell, study.varied()):<36} seed {p.seed}  "
              f"{p.state:<9} {rid}")
    return 0


def _mean_sd(stat: dict) -> str:
    """A cell statistic in percent: ``mean ± std`` over seeds, ``–`` when none finished."""
    if stat["mean"] is None:
        return "–"
    sd = f" ± {100 * stat['std']:.1f}" if stat["std"] is not None else ""
    return f"{100 * stat['mean']:.1f}{sd}"


def format_report(rep: dict) -> str:
    from ser import studies

    lines = [f"{rep['title']} [{rep['study']}]", studies.protocol_sentence(rep),
             f"progress: {_counts_line(rep['progress'])}", "",
             f"{'cell':<36} {'n':>2}  {'test acc %':>12} {'test UAR %':>12} "
             f"{'val UAR %':>12} {'seed %':>7}"]
    for c in rep["cells"]:
        seed = f"{100 * c['seed_reported']:.1f}" if c["seed_reported"] is not None else "–"
        flag = "" if c["complete"] else "  (incomplete: < 2 seeds, no finding)"
        lines.append(f"{c.get('options', c['label']):<36} {c['n_seeds']:>2}  "
                     f"{_mean_sd(c['test_accuracy']):>12} "
                     f"{_mean_sd(c['test_uar']):>12} {_mean_sd(c['val_uar']):>12} "
                     f"{seed:>7}{flag}")
    lines += ["", f"noise rule: {rep['noise_rule']}"]
    for cl in rep["claims"]:
        lines.append(f"- {cl['text']}: {cl['verdict'].upper()} — {cl['detail']}")
    lines += ["", f"seed figures: {rep['seed_source']}",
              f"full length: {rep['full_command']}"]
    return "\n".join(lines)


def format_markdown(rep: dict) -> str:
    """The report as a Markdown table and a verdict list (what the README shows)."""
    from ser import studies

    lines = [f"*{studies.protocol_sentence(rep)}; mean ± std over seeds "
             f"{', '.join(map(str, rep['seeds']))}.*", "",
             "| cell | seeds | test accuracy % | test UAR % | val UAR % | seed write-up % |",
             "|---|---|---|---|---|---|"]
    for c in rep["cells"]:
        seed = f"{100 * c['seed_reported']:.1f}" if c["seed_reported"] is not None else "–"
        n = f"{c['n_seeds']}/{c['planned_seeds']}" + ("" if c["complete"] else
                                                      " (incomplete)")
        lines.append(f"| {c.get('options', c['label'])} | {n} | "
                     f"{_mean_sd(c['test_accuracy'])} | "
                     f"{_mean_sd(c['test_uar'])} | {_mean_sd(c['val_uar'])} | {seed} |")
    lines.append("")
    for cl in rep["claims"]:
        lines.append(f"- {cl['text']}: **{cl['verdict']}** ({cl['detail']})")
    lines.append(f"\nNoise rule: {rep['noise_rule']}.")
    return "\n".join(lines)


def cmd_report(args) -> int:
    from ser import studies
    from ser.fileio import write_json

    if args.shipped:
        rep = studies.shipped_reports().get(args.name)
        if rep is None:
            raise ValueError(f"No shipped report for {args.name!r} in {studies.studies_dir()}; "
                             f"`python -m ser study ship {args.name} --data DIR` writes one.")
    else:
        rep = studies.report(studies.get_study(args.name), args.data)
    print(format_markdown(rep) if args.markdown else format_report(rep))
    if args.json:
        write_json(args.json, rep)
        print(f"written to {args.json}")
    return 0


def cmd_ship(args) -> int:
    from ser import studies

    study = studies.get_study(args.name)
    dest = studies.ship(study, args.data)
    rep = json.loads(dest.read_text())
    print(format_report(rep))
    print(f"shipped to {dest}")
    return 0
