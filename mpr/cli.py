"""The `mpr` command.

    mpr detect SOURCE --brands BRANDS.yaml [--profile NAME|PATH] [--set STAGE.KEY=VALUE ...] [--out DIR]
    mpr resume RUN_ID                   resume a run paused by --pause-after / --step
    mpr checkpoints SOURCE
    mpr profiles [show NAME [--set ...]]
    mpr eval REPORT.json --truth TRUTH.json
    mpr brands list|add TEXT BRAND|remove TEXT|review TEXT approve|reject
    mpr report RUN|SOURCE [--profile NAME] [--out DIR]
    mpr query [--source S] [--profile NAME] [--brand B] [--json]
    mpr chunk SOURCE [--chunk-s N]      cut a long source into chunks under media-in (a timeline)
    mpr scan                            register new video/audio files under media-in
    mpr blocks register [--from-env]    register MPR's Prefect blocks (and save S3 ones from the environment)
    mpr server up [--port N] [--database URL]   a local Prefect server (SQLite or PostgreSQL)
    mpr synth OUT.mp4 [...]
    mpr bench SOURCE --brands B [--profile P] [--minutes M]   real-time factor, Prefect overhead, decode floor

Bad input prints one line on stderr and exits 2; a failed run exits 1.
Prefect is imported only once the input has been validated.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from mpr import bench, server, temporary_server
from mpr.errors import InputError, MprError
from mpr.settings import apply_offline_defaults, tune_malloc


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage too)
        raise InputError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mpr", description="Measure sponsor-brand exposure in broadcast video.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    detect = sub.add_parser("detect", help="find brands in a video, image, image folder or fsspec URL")
    detect.add_argument("source")
    detect.add_argument("--brands", required=True, help="brands YAML file")
    detect.add_argument("--profile", default="soccer_broadcast", help="profile name or YAML path")
    detect.add_argument("--set", dest="sets", action="append", default=[], metavar="STAGE.KEY=VALUE",
                        help="override one stage config value (repeatable)")
    detect.add_argument("--out", help="output folder (default: out/<source name>)")
    detect.add_argument("--json", action="store_true", help="print report.json instead of tables")
    detect.add_argument("--debug", action="store_true",
                        help="write debug overlays (mask, lines, bands, boxes, OCR text) to the artifact store")
    detect.add_argument("--dask", metavar="ADDRESS|BLOCK",
                        help="Dask scheduler (tcp://HOST:PORT) or DaskCluster block whose GPU workers run the "
                             "profile's gpu stages (default: MPR_DASK; none: everything runs here)")
    detect.add_argument("--pause-after", action="append", default=[], metavar="STAGE",
                        help="pause the run after this stage until `mpr resume RUN_ID` (repeatable)")
    detect.add_argument("--step", action="store_true", help="pause after every stage")
    detect.add_argument("--ignore", action="append", default=[], metavar="START-END|FILE",
                        help="leave out a time range (replay, ad break): 12:30-13:05; repeatable, or a file of ranges")
    detect.add_argument("--rate-card", metavar="YAML", help="currency, spot_30s or cpm+audience, placement_rates")
    detect.add_argument("--no-video", dest="video", action="store_false", help="do not write annotated.mp4")
    detect.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own logs")

    resume = sub.add_parser("resume", help="resume a paused run (Prefect has no resume command)")
    resume.add_argument("run_id", metavar="RUN_ID", help="the Prefect flow run id the pause printed")

    checkpoints = sub.add_parser("checkpoints", help="stage configs computed for a source, as a tree")
    checkpoints.add_argument("source")

    profiles = sub.add_parser("profiles", help="list profiles, or show one resolved")
    profiles.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    profiles.add_argument("name", nargs="?", default="soccer_broadcast")
    profiles.add_argument("--set", dest="sets", action="append", default=[], metavar="STAGE.KEY=VALUE")

    evaluate = sub.add_parser("eval", help="score a report.json against per-second ground truth")
    evaluate.add_argument("report", help="report.json written by mpr detect")
    evaluate.add_argument("--truth", required=True, help="truth JSON (mpr synth's, or a multi-clip file)")
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")

    brands = sub.add_parser("brands", help="the brand registry: aliases learned from escalation")
    brands_sub = brands.add_subparsers(dest="action", required=True, parser_class=_Parser)
    listing = brands_sub.add_parser("list", help="every alias with source, status and provenance")
    listing.add_argument("--status", choices=["learned", "approved", "rejected"])
    listing.add_argument("--json", action="store_true")
    add = brands_sub.add_parser("add", help="add an alias by hand (source manual, approved)")
    add.add_argument("text")
    add.add_argument("brand")
    remove = brands_sub.add_parser("remove", help="forget an alias")
    remove.add_argument("text")
    remove.add_argument("--brand")
    review = brands_sub.add_parser("review", help="approve or reject a learned alias (rejected ones are never used)")
    review.add_argument("text")
    review.add_argument("verdict", choices=["approve", "reject"])
    review.add_argument("--brand")

    report = sub.add_parser("report", help="rebuild a run's report files from the database")
    report.add_argument("ref", metavar="RUN|SOURCE",
                        help="run id, run key, Prefect flow run id, or a source (its newest completed run)")
    report.add_argument("--profile", help="with a SOURCE: the newest run with this profile")
    report.add_argument("--out", help="output folder (default: out/<source name>)")

    query = sub.add_parser("query", help="exposure seconds per brand per match, from the database")
    query.add_argument("--source")
    query.add_argument("--profile")
    query.add_argument("--brand")
    query.add_argument("--json", action="store_true")

    chunk = sub.add_parser("chunk", help="cut a long source into chunks under media-in and register a timeline")
    chunk.add_argument("source", help="a key under MPR_MEDIA_IN, a local path or an s3:// URL")
    chunk.add_argument("--chunk-s", type=float, default=60.0, help="chunk length in seconds (cut at keyframes)")
    chunk.add_argument("--json", action="store_true")
    scan = sub.add_parser("scan", help="register new video/audio files under MPR_MEDIA_IN")
    scan.add_argument("--json", action="store_true")

    blocks = sub.add_parser("blocks", help="Prefect blocks: S3 credentials, result storage, VLM server")
    blocks_sub = blocks.add_subparsers(dest="action", required=True, parser_class=_Parser)
    register = blocks_sub.add_parser("register", help="register MPR's block types with the Prefect API")
    register.add_argument("--from-env", action="store_true",
                          help="also save aws-credentials/mpr-s3 (and s3-bucket/mpr-results) from the environment")

    server.add_parser(sub)
    bench.add_parser(sub)

    synth = sub.add_parser("synth", help="render a synthetic broadcast clip with ground truth",
                           add_help=False)
    synth.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_offline_defaults()
    tune_malloc()  # before any thread starts (flows.detect also calls it, for notebooks)
    try:
        args = build_parser().parse_args(argv)
        if args.command in FLOW_COMMANDS:
            temporary_server.tie()  # a killed mpr leaves no Prefect server behind
        return COMMANDS[args.command](args)
    except MprError as exc:
        print(f"mpr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mpr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line unless MPR_DEBUG asks for more
        if os.environ.get("MPR_DEBUG"):
            raise
        print(f"mpr: error: unexpected {type(exc).__name__}: {exc} (MPR_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


def cmd_detect(args) -> int:
    from mpr.analytics.inputs import analyst_overrides
    from mpr.db.session import get_engine
    from mpr.plan import prepare_run
    from mpr.profiles import parse_set
    from mpr.timeline import load_timeline, timeline_ref

    overrides = analyst_overrides(parse_set(args.sets), args.ignore, args.rate_card)
    ref = timeline_ref(args.source)
    if ref is not None:  # the chunks of a long source: validate the first one
        timeline = load_timeline(ref)
        prepare_run(timeline.uris[0], args.brands, args.profile, overrides, args.debug)
        name = f"timeline-{Path(timeline.name).stem}"
    else:
        name = Path(prepare_run(args.source, args.brands, args.profile, overrides, args.debug).source.name).stem
    out = args.out or str(Path("out") / name)  # prepare_run above failed fast on bad input
    get_engine()  # and an unreachable database fails here, before any work
    if not args.verbose:
        # Prefect's console logs (tracebacks of failed tasks included) stay in the run's
        # log in the UI/API; the CLI prints progress and one line per problem itself.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    _show_progress()
    from flows.detect import detect_brands

    report = detect_brands(args.source, args.brands, args.profile, overrides, out, args.debug,
                           dask=args.dask, pause_after=args.pause_after, step=args.step, video=args.video)
    if args.json:
        print(json.dumps(report.model_dump(mode="json", exclude={"detections"}), indent=2))
    else:
        _print_tables(report)
        print(f"report: {out.rstrip('/')}/report.json")
    return 0


def cmd_resume(args) -> int:
    from uuid import UUID

    try:
        run_id = UUID(args.run_id)
    except ValueError:
        raise InputError(f"mpr resume: {args.run_id!r} is not a flow run id") from None
    from prefect.exceptions import NotPausedError, ObjectNotFound, PrefectException
    from prefect.flow_runs import resume_flow_run

    try:
        resume_flow_run(run_id)
    except ObjectNotFound:
        raise MprError(f"mpr resume: no flow run {run_id}") from None
    except NotPausedError:
        raise MprError(f"mpr resume: flow run {run_id} is not paused") from None
    except (PrefectException, RuntimeError) as exc:  # timed out, or refused
        raise MprError(f"mpr resume: {run_id}: {exc}") from None
    print(f"resumed {run_id}")
    return 0


def _show_progress() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("mpr.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _print_tables(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from mpr.reporting import BRAND_COLUMNS, STAGE_COLUMNS, brand_rows, stage_rows

    console = Console()
    console.width = max(console.width, 110)
    for title, columns, rows in (("Stages", STAGE_COLUMNS, stage_rows(report)),
                                 (f"Brands in {report.source}", BRAND_COLUMNS, brand_rows(report))):
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, justify="left" if column in ("stage", "state", "brand") else "right")
        for row in rows:
            table.add_row(*map(str, row))
        console.print(table)
    if not report.brands:
        console.print("no brands found")
    for warning in report.warnings:
        console.print(f"warning: {warning}", style="yellow")
    for provider, used in report.escalation.items():
        console.print(f"{provider}: {used.get('calls', 0):.0f} calls, {used.get('input_tokens', 0):.0f}+"
                      f"{used.get('output_tokens', 0):.0f} tokens, est. ${used.get('cost_usd', 0):.4f}, "
                      f"{used.get('cached', 0):.0f} answers from cache")
    console.print(f"{report.frames_analyzed} frames sampled, {report.frames_kept} read, "
                  f"{report.unresolved} unresolved texts, {report.duration_s:.1f} s of source")


def cmd_checkpoints(args) -> int:
    from mpr import settings
    from mpr.checkpoints import read_ledger, render_tree
    from mpr.results_storage import result_exists, result_storage
    from mpr.source import probe_source

    info = probe_source(args.source, settings.sources_cache_dir())
    entries = read_ledger(settings.ledger_dir(), info.fingerprint)
    print(f"{info.uri}  (fingerprint {info.fingerprint})")
    if not entries:
        print("no checkpoints yet: run `mpr detect` on it first")
        return 0
    storage = result_storage(save=False)  # looking results up needs no saved block
    for line in render_tree(entries, lambda key: result_exists(key, storage)):
        print(line)
    return 0


def cmd_profiles(args) -> int:
    import yaml

    from mpr.profiles import list_profiles, load_profile, parse_set

    if args.action == "list":
        for name in list_profiles():
            description = load_profile(name).description
            print(f"{name:24} {description.splitlines()[0][:100] if description else ''}")
        return 0
    profile = load_profile(args.name, parse_set(args.sets))
    print(yaml.safe_dump(profile.to_dict(), sort_keys=False, width=100), end="")
    return 0


def cmd_eval(args) -> int:
    from mpr.evaluate import evaluate, format_scores, load_report, load_truth

    report = load_report(args.report)
    result = evaluate(report, load_truth(args.truth, Path(report.source).name))
    print(json.dumps(result, indent=2) if args.json else format_scores(result))
    return 0


def cmd_brands(args) -> int:
    from mpr import registry

    if args.action == "list":
        aliases = [a for a in registry.load_registry().aliases if not args.status or a.status == args.status]
        if args.json:
            print(json.dumps([a.model_dump() for a in aliases], indent=2))
            return 0
        from mpr.db.session import database_url, redact

        print(f"{redact(database_url())}: {len(aliases)} aliases")
        for a in aliases:
            how = a.provenance.get("resolver", "")
            print(f"{a.text!r:24} -> {a.brand:20} {a.source:9} {a.status:8} conf {a.confidence:.2f} "
                  f"seen {a.seen:<3} {how} {a.provenance.get('source', '')}")
        return 0
    if args.action == "add":
        registry.add_manual(args.text, args.brand)
        print(f"added {args.text!r} -> {args.brand} (manual, approved)")
    elif args.action == "remove":
        print(f"removed {registry.remove(args.text, args.brand)} alias(es) {args.text!r}")
    else:
        status = "approved" if args.verdict == "approve" else "rejected"
        print(f"{status} {registry.review(args.text, status, args.brand)} alias(es) {args.text!r}")
    return 0


def cmd_report(args) -> int:
    from mpr.db.results import load_report
    from mpr.reporting import write_report

    report = load_report(args.ref, args.profile)
    out = args.out or str(Path("out") / Path(report.source.replace(":", "-")).stem)
    print(f"run {report.run_id or '-'} of {report.source} ({report.profile}, {report.created_at}): "
          f"{len(report.brands)} brands, {len(report.detections)} detections")
    print(f"report: {write_report(report, out)}")
    return 0


def cmd_query(args) -> int:
    from mpr.db.queries import COLUMNS, exposure_per_brand

    rows = exposure_per_brand(args.source, args.profile, args.brand)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no completed runs match")
        return 0
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in COLUMNS))
    return 0


def cmd_chunk(args) -> int:
    from mpr.media import check_chunk_s, resolve_source

    chunk_s = check_chunk_s(args.chunk_s)
    source = resolve_source(args.source)  # bad input: one line, exit 2, before Prefect starts
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from flows.media import chunk_source

    result = chunk_source(args.source, chunk_s)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    verb = "already chunked" if result["reused"] else "chunked"
    print(f"{verb} {source.name}: timeline {result['timeline_id']}, {result['chunks']} chunks of ~{chunk_s:g} s, "
          f"{result['duration_s']:.1f} s in all (analyse it with `mpr detect timeline:{result['timeline_id']}`)")
    for key, offset in zip(result["keys"], result["offsets_s"]):
        print(f"  {offset:9.2f} s  {key}")
    return 0


def cmd_scan(args) -> int:
    from mpr.storage import media_in

    root = media_in()  # a bad MPR_MEDIA_IN fails here
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from flows.media import scan_media

    result = scan_media()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{root.url}: {result['found']} media files, {result['registered']} registered, "
          f"{result['skipped']} known already, {len(result['failed'])} failed")
    for key in result["failed"]:
        print(f"mpr: warning: not registered: {key}", file=sys.stderr)
    return 0


def cmd_blocks(args) -> int:
    from blocks.register import register

    for name in register(from_env=args.from_env):
        print(f"registered {name}")
    return 0


def cmd_synth(args) -> int:
    from mpr import synth

    try:
        return synth.main(args.args, parser_class=_Parser)
    except ValueError as exc:  # a clip spec that cannot be rendered
        raise InputError(f"mpr synth: {exc}") from None


COMMANDS = {"detect": cmd_detect, "checkpoints": cmd_checkpoints, "profiles": cmd_profiles, "eval": cmd_eval,
            "brands": cmd_brands, "resume": cmd_resume, "report": cmd_report, "query": cmd_query,
            "chunk": cmd_chunk, "scan": cmd_scan, "blocks": cmd_blocks, "server": server.run,
            "synth": cmd_synth, "bench": bench.run}
FLOW_COMMANDS = {"detect", "chunk", "scan", "bench"}  # the commands that run Prefect flows

if __name__ == "__main__":
    sys.exit(main())
