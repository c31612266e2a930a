"""`harness` command line: train, sweep, submit, report, export, import, model, bench, describe, ui. Heavy modules (torch, lightning, mlflow) are
imported inside the command that needs them, so `--help` and config errors answer at once.

Exit codes: 0 success; 1 a run failed; 2 bad input (config, data or arguments), with one message;
130 interrupted (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import config as C
from harness import places
from harness.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, InputError, room_lost

MAX_WORKERS_PER_CPU = 4  # --workers past this many per CPU this process may use is a typo, not a layout


def _config_args(p: argparse.ArgumentParser, default_preset: str | None) -> None:
    p.add_argument("--preset", default=default_preset,
                   help=f"a preset name ({', '.join(C.preset_names())}) or a YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. model.lrn=false trainer.max_epochs=5")


def cmd_train(args) -> int:
    if args.resume is not None:
        if not args.resume.strip():
            raise C.ConfigError("--resume: the MLflow run id of the run to continue; got an empty one")
        if args.overrides:
            raise C.ConfigError("--resume continues a run with its recorded config; drop the overrides")
        from harness.train import resume
        result = resume(args.resume)
    else:
        cfg = C.load(args.preset, args.overrides)  # fails fast, before torch is imported
        if args.print_config:
            print(C.to_yaml(cfg), end="")
            return 0
        from harness.data import check_source  # light: a bad source fails before torch is imported
        check_source(cfg.data)
        places.check_outputs(cfg)
        from harness.train import train
        result = train(cfg)
    print(f"harness: run {result.run_id} {result.status} after {result.epochs} epochs"
          + (f": {result.error}" if result.error else ""))
    for key in ("train_err", "val_err", "test_err", "test_err5"):
        if key in result.metrics:
            print(f"  {key:<10} {result.metrics[key]:6.2f} %")
    return 0 if result.status == "FINISHED" else EXIT_FAILED


def cmd_sweep(args) -> int:
    from harness import grid as G

    grid = G.load(args.file, args.overrides)  # a bad grid stops here, before any store exists
    tracking_uri, storage_url = _tracking_uri(args.tracking_uri), places.storage_url(args.storage)
    workers = _workers(args.workers)
    if args.max_seeds is not None and not args.until_resolved:
        raise C.ConfigError("--max-seeds: goes with --until-resolved")
    if args.until_resolved:
        given = args.max_seeds if args.max_seeds is not None else grid.max_seeds or G.DEFAULT_MAX_SEEDS
        try:
            grid = G.with_max_seeds(grid, given)
        except C.ConfigError as err:
            raise C.ConfigError(f"{args.file}: --until-resolved: {err}") from None
    from harness.data import check_source  # light: a bad source fails before torch, MLflow or Optuna loads
    for data in {repr(cell.config.data): cell.config.data for cell in grid.cells}.values():
        check_source(data)
    if args.calibrate_steps < 1:
        raise C.ConfigError(f"--calibrate-steps: must be at least 1; got {args.calibrate_steps}")
    if workers == "auto":  # the cells' network, timed in each layout of this machine's cores
        from harness.bench import best_workers
        workers = best_workers(grid)
    if args.dry_run:
        from harness.plan import plan
        print(plan(grid, storage_url, tracking_uri, workers, args.calibrate_steps))
        return 0
    print(G.describe(grid), flush=True)
    from harness import sweep
    return sweep.run(grid, storage_url=storage_url, tracking_uri=tracking_uri, workers=workers)


def cmd_submit(args) -> int:
    from harness import grid as G
    from harness import slurm

    grid = G.load(args.file, args.overrides)
    options = {}
    for item in args.sbatch:
        key, sep, value = item.partition("=")
        if not key.strip() or key.startswith("-"):
            raise C.ConfigError(f"--sbatch {item!r}: an sbatch option as KEY=VALUE without dashes, e.g. qos=high")
        options[key.strip()] = value if sep else True
    settings = slurm.JobSettings(tasks=args.tasks, partition=args.partition, time_min=args.time,
                                 cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task,
                                 options=options, logs=Path(args.logs), job_name=f"harness-{grid.name}")
    tracking_uri, storage_url = _tracking_uri(args.tracking_uri), places.storage_url(args.storage)
    slurm.check_slurm(settings)  # no SLURM, an unknown partition: before anything else is read or made
    from harness.data import check_source
    for data in {repr(cell.config.data): cell.config.data for cell in grid.cells}.values():
        check_source(data)
    if args.dry_run:
        print(G.describe(grid))
        print(f"harness submit: {settings.tasks} array task(s), each `harness sweep` as one worker; the job:\n")
        print(slurm.sbatch_text(settings))
        return 0
    from harness import sweep
    sweep.check_inputs(grid, storage_url, tracking_uri)
    job = slurm.submit(slurm.SweepTask(grid, storage_url, tracking_uri), settings)
    print(f"harness: submitted job {job}: {settings.tasks} array task(s) of sweep {grid.name}\n"
          f"  follow it:  squeue -j {job}    logs: {settings.logs}/{job}_*/\n"
          f"  its cells:  harness sweep {args.file} --dry-run --storage ... --tracking-uri ...   "
          f"(stop it: scancel {job}; the same submit again continues)")
    return 0


def _workers(given: str) -> int | str:
    """--workers: 'auto' or a number of processes, at most MAX_WORKERS_PER_CPU per CPU this process may
    use (its affinity): each worker is a process with its own torch, data and stores' connections,
    so thousands of them would exhaust the machine before the first cell ran."""
    if given == "auto":
        return given
    if not (given.isascii() and given.isdigit()) or not given.strip("0"):
        raise C.ConfigError(f"--workers: a number of processes (at least 1) or 'auto'; got {given!r}")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if len(given.lstrip("0")) > 6 or int(given) > MAX_WORKERS_PER_CPU * cpus:  # (int() refuses 4,300 digits)
        raise C.ConfigError(f"--workers {given[:20]}: at most {MAX_WORKERS_PER_CPU} per CPU this process may use "
                            f"({MAX_WORKERS_PER_CPU * cpus} here); more share the cores and only slow each other")
    return int(given)


def _tracking_uri(given: str | None) -> str:
    return places.tracking_uri(C.TrackingConfig(uri=given or ""))


def _existing_store(uri: str) -> str | None:
    """The tracking URI, or None where it names an SQLite store that does not exist (a missing or
    empty file: never created by a command that only reads); a file that is not one raises."""
    from harness import stores  # light: reads an SQLite file with sqlite3, no MLflow
    return uri if stores.has_tracking_store(uri) else None


def cmd_report(args) -> int:
    from harness import bundle
    from harness.report import build
    uri = _existing_store(_tracking_uri(args.tracking_uri))
    if uri is None and not any(Path(args.out).glob(f"*/{bundle.FILE_NAME}")):
        raise C.ConfigError(f"--tracking-uri: no tracking store at {_tracking_uri(args.tracking_uri)} and no "
                            f"runs file under {args.out}/*/: run a sweep or `harness import` one first")
    readme, failed = build(uri, args.sweeps, Path(args.out), places.storage_url(args.storage))
    print(f"harness: report written to {readme} (tables, figures and runs files in {args.out}/<sweep>/)")
    if failed:  # the report is whole, but what it reports is not: say which cells, and exit 1
        print(f"harness: {len(failed)} cell(s) failed, left out of the report (run their sweep again to retry "
              f"them): {'; '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_export(args) -> int:
    from harness import bundle
    uri, storage_url = _tracking_uri(args.tracking_uri), places.storage_url(args.storage)
    out = Path(args.out or f"{args.sweep}.runs.zip")
    bundle.check_target(out.absolute())
    if _existing_store(uri) is None:
        raise C.ConfigError(f"--tracking-uri: no tracking store at {uri}")
    sweep = bundle.from_store(uri, args.sweep, storage_url, figures=args.figures,
                              checkpoints=args.checkpoints, models=args.models)
    out = bundle.write(sweep, out)
    points = sum(len(v) for r in sweep.runs for v in r.metrics.values())
    carried = [r for r in sweep.children if r.checkpoint is not None]
    unfinished = sum(r.status in bundle.UNFINISHED for r in sweep.children)
    checkpoints = (f", {len(carried)} of {unfinished} unfinished runs' checkpoints "
                   f"({sum(len(r.checkpoint) for r in carried) / 1024:,.0f} KiB)" if args.checkpoints else "")
    with_models = [r for r in sweep.children if r.model_files]
    model_mb = sum(len(b) for r in with_models for b in r.model_files.values()) / 2**20
    models = f", {len(with_models)} trained models ({model_mb:,.1f} MB)" if args.models else ""
    print(f"harness: sweep {args.sweep}: {len(sweep.runs)} runs (the parent and {len(sweep.children)} child runs), "
          f"{points:,} metric points, {len(sweep.trials)} Optuna trials{checkpoints}{models} -> {out} "
          f"({out.stat().st_size / 1024:,.0f} KiB)")
    return 0


def cmd_import(args) -> int:
    from harness import importing
    uri = _tracking_uri(args.tracking_uri)
    for line in importing.import_files(uri, args.files, args.checkpoint_dir):
        print(f"harness: {line}")
    print(f"harness: imported into {uri}; `harness report` rebuilds their reports, `harness ui` shows them")
    return 0


def cmd_model(args) -> int:
    from harness import trained
    found = trained.find(args.run_id, _tracking_uri(args.tracking_uri))
    m = found.model
    print(f"harness: run {found.run_id} ({found.run_name}): model {m.model_id}, {int(m.tags.get('parameters', 0)):,} "
          f"parameters, {found.size / 2**20:,.1f} MB ({m.tags.get('format', '?')}), after {m.tags.get('epochs', '?')} "
          f"epochs\n  at {m.artifact_location}\n  in Python: from harness.trained import load; "
          f"net = load({found.run_id!r}{'' if args.tracking_uri is None else f', {found.uri!r}'})")
    if args.test:
        now, recorded, images = trained.retest(found.run_id, found.uri)
        said = "none recorded" if recorded is None else f"{recorded:.2f}% recorded"
        if m.tags.get("chosen", "final") != "final":  # tracking.log_model=best
            said += f" (by the final network; this one is the {m.tags['chosen']})"
        print(f"harness: test error {now:.2f}% on {images:,} test images now; {said}")
    return 0


def cmd_ui(args) -> int:
    import socket

    uri = _tracking_uri(args.uri)
    if not 0 < args.port < 65536:
        raise C.ConfigError(f"--port: a TCP port, 1 to 65535; got {args.port}")
    with socket.socket() as probe:  # a second UI on a busy port would otherwise fail quietly
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is not busy
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError:
            raise C.ConfigError(f"--port {args.port}: 127.0.0.1:{args.port} is in use (another `harness ui`?); "
                                f"stop it or pick another --port") from None
    base = f"http://127.0.0.1:{args.port}"
    view = "workflowType=machine_learning"  # MLflow 3.17's UI opens on its GenAI pages without it
    if _existing_store(uri):
        from harness import tracking
        sweeps = set(tracking.sweep_names(uri))
        for name, (experiment, tags) in sorted(tracking.experiments(uri).items()):
            if name not in sweeps:
                continue
            if tags.get(tracking.KIND_TAG) != tracking.TRAINING_KIND:  # a store made before harness set it
                tracking.set_experiment_tag(uri, experiment, tracking.KIND_TAG, tracking.TRAINING_KIND)
            print(f"harness: sweep {name}: {base}/#/experiments/{experiment}/runs?{view}")
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # 9 s to answer instead of 24
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
               "--port", str(args.port), "--workers", "1", "--default-artifact-root", "mlruns"]
    print(f"harness: MLflow UI for {uri} at {base}/#/experiments?{view} (Ctrl-C stops it)", flush=True)
    server = None
    try:
        # its own process group, so that stopping it stops its workers too; and told to stop if
        # this process dies without a word (kill -9)
        server = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_stop_with_parent)
        return server.wait()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see guarded): how a UI is stopped, so 0
        return 0
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:  # not Linux: the process group still stops with Ctrl-C or SIGTERM
        pass


def cmd_bench(args) -> int:
    from harness import bench as B  # imports torch; lightning only once the harness's epoch is timed

    targets = [(preset, args.overrides) for preset in args.preset] or \
        [(preset, extra + args.overrides) for preset, extra in B.DEFAULT_TARGETS]
    if args.repeats < 1:
        raise C.ConfigError(f"--repeats: must be at least 1; got {args.repeats}")
    for preset, overrides in targets:
        C.load(preset, overrides)  # a bad preset or key fails at once; data and grids in B.check
    grids = [] if args.no_layouts else [Path(g) for g in args.grid or B.DEFAULT_GRIDS]
    measurements = 2 * len(B.SETTINGS) + 5  # the epochs in each setting; steps and transform in the default
    minutes = len(targets) * ((args.repeats + 1) * measurements * B.SECONDS_PER_MEASUREMENT / 60 + 2) + len(grids)
    print(f"bench: {len(targets)} network(s), {args.repeats} repeats, {len(grids)} grid(s): "
          f"about {minutes:.0f} minutes on a CPU", flush=True)
    command = " ".join(["harness bench", *sys.argv[2:]]) if sys.argv[1:2] == ["bench"] else "harness bench"
    print(B.bench(targets, grids, args.repeats, None if args.no_write else Path(args.out), command))
    return 0


def cmd_describe(args) -> int:
    cfg = C.load(args.preset, args.overrides)
    from harness.describe import describe
    classes = cfg.model.num_classes or (1000 if cfg.data.dataset == "imagenet" else 10)
    print(describe(cfg, classes, args.steps))
    return 0


def _sweep_stores(p: argparse.ArgumentParser, reach: str) -> None:
    p.add_argument("--storage", help=f"Optuna storage URL{reach} (default: $HARNESS_SWEEP_STORAGE or "
                                     "sqlite:///mlruns/optuna.db), e.g. postgresql://user:pw@host/db")
    p.add_argument("--tracking-uri", help=f"MLflow tracking URI{reach} (default: $MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlruns/mlflow.db)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="harness", description="Ablations of AlexNet's tricks.")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train and test one run, recorded in MLflow")
    _config_args(p, "cifar_convnet4")
    p.add_argument("--resume", metavar="RUN_ID", help="continue this run from its last checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", help="run an ablation grid file as an Optuna study with MLflow runs",
                       description="Run every cell of a grid file once; run it again to resume.")
    p.add_argument("file", help="a grid file, e.g. ablations/cifar_tricks_cpu.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every cell")
    p.add_argument("--workers", default="1", help="worker processes on this machine (default 1), or 'auto': "
                                                  "the layout of processes x threads timed fastest here (~30 s)")
    _sweep_stores(p, "")
    p.add_argument("--until-resolved", action="store_true",
                   help="after the grid's seeds, add seeds (a round at a time) to the tricks whose interval "
                        "still holds both zero and the paper's delta, by a sequential rule that keeps the "
                        "error rate at 5%% over the looks (harness/sequential.py)")
    p.add_argument("--max-seeds", type=int, help="with --until-resolved: the most seeds a trick gets (default 10)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and estimate their cost; run nothing")
    p.add_argument("--calibrate-steps", type=int, default=2, help="SGD steps timed per network for --dry-run")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("submit", help="run a grid on SLURM: a job array of identical `harness sweep` workers",
                       description="Submit the sweep to SLURM as a job array (through submitit): each task claims "
                                   "free cells from the shared stores; a pre-empted or timed-out task gives its cell "
                                   "back and is requeued, and continues that cell from its checkpoint.")
    p.add_argument("file", help="a grid file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every cell")
    p.add_argument("--tasks", type=int, default=2, help="array tasks, each one worker (default 2)")
    p.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    p.add_argument("--time", type=int, default=60, help="time limit per task in minutes (default 60); a task "
                                                        "that reaches it is requeued and continues")
    p.add_argument("--cpus-per-task", type=int, help="CPUs per task (default: SLURM's)")
    p.add_argument("--gpus-per-task", type=int, default=0, help="GPUs per task (default 0)")
    p.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                   help="a further sbatch option, repeatable (--sbatch qos=high --sbatch account=lab)")
    p.add_argument("--logs", default="mlruns/slurm", help="folder for the tasks' logs, on a file system the "
                                                          "nodes share (default mlruns/slurm)")
    _sweep_stores(p, " every node reaches")
    p.add_argument("--dry-run", action="store_true", help="show the job it would submit; submit nothing")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("report", help="rebuild reports/ from the tracking store and reports/*/runs.zip")
    p.add_argument("sweeps", nargs="*", metavar="SWEEP",
                   help="sweep names (default: every sweep in the store or in a runs file)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlruns/mlflow.db)")
    p.add_argument("--out", default="reports",
                   help="output folder (default: reports); the runs files it holds (<out>/<sweep>/runs.zip) are "
                        "read too, for the sweeps the store does not hold")
    p.add_argument("--storage", help="Optuna storage URL, for the trials in each runs file (default: "
                                     "$HARNESS_SWEEP_STORAGE or sqlite:///mlruns/optuna.db)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="write one sweep's runs to one file, for `harness import` anywhere",
                       description="One sweep (its parent, every child run, metric histories, configs, "
                                   "Optuna trials) to one deterministic zip of JSON lines.")
    p.add_argument("sweep", metavar="SWEEP", help="the sweep's name (its MLflow experiment)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlruns/mlflow.db)")
    p.add_argument("--storage", help="Optuna storage URL for the trials (default: $HARNESS_SWEEP_STORAGE or "
                                     "sqlite:///mlruns/optuna.db)")
    p.add_argument("--out", help="the file to write (default: SWEEP.runs.zip)")
    p.add_argument("--figures", action="store_true", help="also the runs' PNG/SVG artifacts (learning curves)")
    p.add_argument("--checkpoints", action="store_true",
                   help="also each unfinished (KILLED or RUNNING) run's last checkpoint found here, so that the sweep "
                        "continues it mid-cell wherever the file is imported (binary; about 2x the parameters each)")
    p.add_argument("--models", action="store_true",
                   help="also each run's trained network (its MLflow model, pt2; about 4 bytes per parameter each)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="recreate exported sweeps in an MLflow store (idempotent)",
                       description="Recreate each file's sweep as a parent run with nested children; "
                                   "importing a file again changes nothing.")
    p.add_argument("files", nargs="+", metavar="FILE", help="files written by `harness export` (or reports/*/runs.zip)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlruns/mlflow.db)")
    p.add_argument("--checkpoint-dir", metavar="DIR",
                   help="where carried checkpoints go (default: each run's trainer.checkpoint_dir, as its sweep reads it)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("model", help="a run's trained network: where it is, its size, its test error again",
                       description="The MLflow model a finished run logged (harness/trained.py says how to load it).")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's MLflow run id")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                          "sqlite:///mlruns/mlflow.db)")
    p.add_argument("--test", action="store_true", help="evaluate the model again on the run's own test set, "
                                                       "beside the test error the run recorded")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("bench", help="time the harness against a bare PyTorch loop; write reports/bench/",
                       description="The harness's epoch against a bare loop on the same model and data, eager, "
                                   "compiled and in bf16, the step, the data transform, LRN's share, start-up, and "
                                   "sweep layouts, on this machine.")
    p.add_argument("--preset", action="append", default=[],
                   help="a preset to time, repeatable (default: cifar_convnet4 and cifar_alexnet "
                        "model.width=0.25)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every preset")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each measurement (default 3)")
    p.add_argument("--grid", action="append", help="grid files whose cells/hour to measure per layout of "
                                                   "the cores (default: the main job's CPU grids)")
    p.add_argument("--no-layouts", action="store_true", help="skip the sweep-layout measurements")
    p.add_argument("--out", default="reports/bench", help="folder for <machine>.md and .json (default reports/bench)")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("describe", help="print a model's layers, parameters and step cost")
    _config_args(p, "imagenet_alexnet")
    p.add_argument("--steps", type=int, default=2, help="training steps to time on this CPU (0 = none)")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("ui", help="start the MLflow UI on 127.0.0.1")
    p.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_ui)
    return top


_SIGNALLED: list[int] = []  # the stop signals this process received


def _interrupt(signum: int, frame) -> None:
    """SIGINT (Ctrl-C) and SIGTERM (kill, SLURM pre-emption) stop a run alike: it ends KILLED and
    continues from its checkpoint. Remembered, so that exit 130 means a signal and nothing else."""
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args, extra = top.parse_known_args(argv)
    # key=value overrides may come after options (`sweep FILE --dry-run seed=1`)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        top.error(f"unrecognized arguments: {' '.join(extra)}")
    return guarded(lambda: args.func(args))


def guarded(command: Callable[[], int]) -> int:
    """Run a command under harness's exit codes: bad input (InputError) one line and 2; out of room
    anywhere in the failure's chain (`errors.room_lost`) one line and 1; SIGINT or SIGTERM 130;
    anything else raises (a traceback, exit 1). The sweep's workers run under it too."""
    _SIGNALLED.clear()
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return command()
    except Exception as err:
        where = room_lost(err)  # also where a library, or our own one-line error, wrapped it
        if where is not None:
            print(f"harness: out of room: {where}; what had finished is kept: make room, then the same command "
                  "again continues", file=sys.stderr)
            return EXIT_FAILED
        if not isinstance(err, InputError):
            raise
        print(f"harness: {err.kind}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, SystemExit) as err:
        # Lightning turns the KeyboardInterrupt our handler raises into exit(1): a signal, still
        if isinstance(err, SystemExit) and (err.code in (0, None) or not _SIGNALLED):
            raise
        print("harness: interrupted; the same command again continues where it stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:  # a caller in the same process (a test, a notebook) keeps its own handlers afterwards
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    sys.exit(main())
