"""Shared infrastructure of the benchmarks: machine description, timing,
Markdown tables and the writing of results.

Every benchmark calls :func:`write_report` once, which writes
``<out>/<name>.json`` (the results plus :func:`machine_info`),
``<out>/<name>.md`` and, given a matplotlib figure, ``<out>/<name>.png``;
``<out>`` is ``benchmarks/results`` for a full run and :data:`QUICK_DIR` (a
directory outside the repository) for a ``--quick`` one, unless ``--out`` (see
:func:`add_common_args`) or ``out_dir=`` says otherwise: a smoke test never
overwrites the committed results. Nor does a run replace a report that another
command made (:func:`refuse_to_replace`): the same file name does not make the
same run, and only ``--overwrite`` lets it. Every report says how it was made: the JSON
holds the command and a ``quick`` flag, the Markdown the command, the date
(UTC) and, for a quick run, a warning that its numbers mean nothing. A report
lands as one set (:func:`tinynet.atomic.atomic_write_all`): all its files are
written to temporary files beside their targets first, then renamed in the
order ``.png``, ``.md``, ``.json``, so an interrupted run never leaves half a
file, and a new ``.json`` (the machine-readable record) never stands beside
an older ``.md`` or ``.png``. A report written without a figure removes the
``.png`` of its name only when that figure is known to show other results
(:func:`_figure_is_stale`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

# NumPy before tinynet, as every benchmark imports them: tinynet imported first
# would set OpenBLAS's short wait (tinynet.spinwait) in this process's
# environment, which the startup benchmark's subprocesses and the peers'
# workers would then inherit
import numpy  # noqa: F401,I001
from tinynet import cli  # noqa: E402

__all__ = [
    "RESULTS_DIR", "QUICK_DIR", "QUICK_NOTE", "add_common_args", "positive_int", "float_in",
    "output_dir", "output_problem", "parse_args", "check_output", "refuse_unused",
    "refuse_to_replace", "command_settings", "same_run", "after_parsing",
    "command_line", "command_words", "run_settings", "benchmark_main",
    "machine_info", "machine_markdown", "markdown_table", "measure", "provenance_markdown",
    "write_report", "fmt", "ratio",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Where a ``--quick`` run writes without ``--out``: outside the repository, so
#: a smoke test cannot overwrite the committed results with meaningless numbers.
QUICK_DIR = Path(tempfile.gettempdir()) / "tinynet-benchmarks-quick"
#: The first line of a quick run's Markdown report.
QUICK_NOTE = "**Quick run: smoke test, numbers not meaningful.**"


# ----------------------------------------------------------------- arguments
def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--quick`` (a tiny smoke-test version in seconds), ``--out DIR``
    (checked as soon as the arguments are parsed: :func:`parse_args`) and
    ``--overwrite`` (let the run replace a report another command made:
    :func:`refuse_to_replace`)."""
    parser.add_argument("--quick", action="store_true",
                        help="tiny version for smoke tests (seconds, numbers meaningless)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"directory for the JSON/Markdown/PNG files (default {RESULTS_DIR}; "
                             f"with --quick {QUICK_DIR})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the report of the same name in that directory even when "
                             "another command made it (without it, such a run is refused "
                             "before it starts; rerunning the report's own command needs no "
                             "flag)")
    return parser


#: The ``type=`` of a count option (repeats, seeds, epochs, samples, threads,
#: widths): a positive integer, else an argparse usage error (exit status 2)
#: saying what was received -- not a traceback from deep inside a run, nor a
#: 0 quietly replaced by the default. The ``tinynet`` command's own.
positive_int = cli.positive_int


def float_in(low: float = -math.inf, high: float = math.inf, *, open_low: bool = False,
             open_high: bool = False):
    """The ``type=`` of an option taking a number in an interval: ``[low, high]``,
    with ``open_low``/``open_high`` excluding an end (an infinite end is always
    excluded). Anything else (NaN included) is an argparse usage error (exit
    status 2) saying the interval and what was received -- before the run, not
    as a traceback from the model that rejects it after minutes of other parts
    (:func:`tinynet.cli.number_type`)."""
    open_low, open_high = open_low or low == -math.inf, open_high or high == math.inf
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"

    def inside(value: float) -> bool:  # NaN is never inside: every comparison is False
        return (value > low if open_low else value >= low) and \
            (value < high if open_high else value <= high)
    return cli.number_type(float, inside, f"a number in {interval}")


def output_dir(out_dir, quick: bool) -> Path:
    """Where a report goes: ``out_dir`` when given, else :data:`QUICK_DIR` for a
    quick run and :data:`RESULTS_DIR` for a full one."""
    if out_dir is not None:
        return Path(out_dir)
    return QUICK_DIR if quick else RESULTS_DIR


def output_problem(out: Path) -> str | None:
    """Why a report could not be written into the directory ``out``, or None.

    ``out`` must be a writable directory, or not exist yet below a writable
    directory (:func:`write_report` creates it): an existing file there, or
    on the way to it, and a directory this process may not write into are
    refused. Nothing is created: an argument refused after this check leaves
    no empty directory behind."""
    out = Path(out)
    existing = out
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent  # the nearest part of the path that exists
    if not existing.is_dir():
        return (f"{existing} exists and is not a directory" if existing == out
                else f"{existing}, on the way to {out}, is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def parse_args(parser: argparse.ArgumentParser, argv, check_out: bool = True):
    """``parser.parse_args(argv)`` with the output directory checked at once
    (:func:`check_output`, a usage error): every benchmark's ``main`` parses
    through it, so a bad ``--out`` is refused before the run, not found when
    the report is written after minutes or hours of it. ``check_out=False``
    leaves the check to the caller, for a run whose quickness is only known
    later (``transfer --from-json`` takes it from the JSON it reads)."""
    args = parser.parse_args(argv)
    if check_out:
        check_output(parser, args)
    return args


def check_output(parser: argparse.ArgumentParser, args, quick: bool | None = None) -> None:
    """A usage error when the report cannot be written where it goes,
    :func:`output_dir` ``(args.out, quick)`` (``quick`` defaulting to
    ``args.quick``): see :func:`output_problem`."""
    out = output_dir(args.out, args.quick if quick is None else quick)
    problem = output_problem(out)
    if problem is not None:
        parser.error(f"--out expected a directory to write the report into; {problem}"
                     if args.out is not None else
                     f"cannot write the report into {out}: {problem}")


def refuse_unused(parser: argparse.ArgumentParser, args, options, reason: str) -> None:
    """A usage error when any of ``options`` (``args`` attribute names) was
    given, saying it ``has no effect {reason}``: a run must not quietly ignore
    what it was asked (``fashion --quick --seeds 5`` ran one seed). An option
    was given when its value is not its default in ``parser``: the options
    named here have a default that no value given equals (None, or False
    for a flag such as ``--quick``)."""
    given = [f"--{name.replace('_', '-')}" for name in options
             if getattr(args, name) != parser.get_default(name)]
    if given:
        parser.error(f"{' and '.join(given)} {'has' if len(given) == 1 else 'have'} no "
                     f"effect {reason}; drop {'it' if len(given) == 1 else 'them'}")


def command_line(name: str, argv) -> str:
    """``python -m benchmarks <name> <argv>`` as the run was given, without
    ``--out`` and its directory nor ``--overwrite`` (where the files went, and
    what they replaced, does not change them): rerunning the command a report
    records is rerunning its run (:func:`refuse_to_replace`).

    The arguments are quoted as a POSIX shell reads them (:func:`shlex.join`):
    one holding a space (``--ou "my results"``) is one argument again when the
    command is read back (:func:`command_words`), and pasting the command
    into a shell reruns it. An argument that needs no quotes is written as
    it is, so a command of plain words reads as before quoting."""
    argv = list(argv or [])
    shown = [a for i, a in enumerate(argv) if a not in ("--out", "--overwrite")
             and not a.startswith("--out=") and (i == 0 or argv[i - 1] != "--out")]
    return shlex.join(["python", "-m", "benchmarks", name, *shown])


def command_words(command: str) -> list[str]:
    """The words of a recorded :func:`command_line` ``command``: the command
    and its arguments, as :func:`shlex.split` reads a shell line. A command
    recorded before the arguments were quoted is plain words: one that
    ``shlex`` cannot read (an unmatched quote in an argument, ``--label
    it's``) is split at its spaces, as it was written."""
    try:
        return shlex.split(command)
    except ValueError:  # an unquoted command with a lone quote character
        return command.split()


def run_settings(args) -> dict:
    """The parsed arguments ``args`` as a report's ``settings`` record them:
    ``out`` as text, and without ``overwrite`` (what a run replaced is not one
    of its settings)."""
    return {key: str(value) if key == "out" else value for key, value in vars(args).items()
            if key != "overwrite"}


def _recorded_command(path: Path) -> tuple[str | None, str]:
    """``(command, description)`` of the report whose JSON is ``path``: the
    command it records (None when it records none or cannot be read) and how
    a message names it."""
    try:
        command = json.loads(path.read_text()).get("command")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        return None, "a file that is not a report's JSON"
    if not isinstance(command, str) or not command:
        return None, "a report that records no command (written before reports recorded them)"
    return command, f"the report of `{command}`"


def command_settings(parser: argparse.ArgumentParser, command: str) -> dict | None:
    """The settings the :func:`command_line` ``command`` runs with, as ``parser``
    (its benchmark's) parses them: the arguments' values, without ``out`` and
    ``overwrite`` (not settings of a run: :func:`command_line`), defaults
    included. None when ``command`` is not a run of that benchmark (it does not
    start with ``parser.prog``, ``python -m benchmarks <name>``) or does not
    parse; nothing is printed then, and nothing exits.

    A command is parsed again from its text, not taken from the namespace a
    benchmark's ``main`` went on to fill in, so that two commands are read
    alike: an option a run left out has its parser's default in both."""
    prefix, words = parser.prog.split(), command_words(command)
    if words[:len(prefix)] != prefix:
        return None
    try:
        with contextlib.redirect_stderr(io.StringIO()), \
                contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(words[len(prefix):])
    except SystemExit:  # a usage error (or --help): not a run of these settings
        return None
    fill = getattr(parser, "fill_defaults", None)
    if fill is not None:  # the defaults a benchmark's main gives after parsing
        fill(args)
    return {key: value for key, value in vars(args).items() if key not in ("out", "overwrite")}


def after_parsing(parser: argparse.ArgumentParser, fill) -> None:
    """Say that ``fill(args)`` gives ``parser``'s arguments the defaults its
    benchmark sets after parsing (``fashion``'s ``--seeds`` None -> 3), so
    that :func:`command_settings` reads ``fashion`` and ``fashion --seeds 3``
    as one run. The benchmark calls ``fill`` on its own arguments too."""
    parser.fill_defaults = fill


def same_run(parser: argparse.ArgumentParser, held: str, command: str) -> bool:
    """Whether the :func:`command_line` commands ``held`` and ``command`` make the
    same run of ``parser``'s benchmark: the same text, or the same settings
    (:func:`command_settings`), however spelt -- ``--lr 3e-3``, ``--lr=0.003``
    and ``--lr 0.003`` are one number, and the order of the options does not
    matter. A command that does not parse is the same run as none other than
    itself. An option's default is the one of this machine: ``fashion`` and
    ``fashion --threads 2`` are one run on a machine of two cores, as
    rerunning the first here runs the second."""
    if held == command:
        return True
    settings = command_settings(parser, held)
    return settings is not None and settings == command_settings(parser, command)


def refuse_to_replace(parser: argparse.ArgumentParser, args, name: str, command: str,
                      quick: bool | None = None) -> None:
    """A usage error when the report ``name`` that this run would write (into
    :func:`output_dir` ``(args.out, quick)``, ``quick`` defaulting to
    ``args.quick``) would replace one made by another command: its
    ``<name>.json`` exists and records a command that is not the same run as
    ``command`` (this run's :func:`command_line`; :func:`same_run`), or none.
    Every benchmark calls it once its arguments are checked, before any work.

    A file name says some settings of a run, not all: ``mtl --parts
    synthetic`` writes ``mtl.*`` as the full ``mtl`` run does, and replaced
    its tables. Comparing commands catches every such case without renaming
    the files that README and the docs cite by the command that made them.
    Rerunning a report's own command (to refresh it) goes ahead, however its
    options are spelt or ordered (``parser`` reads both commands); so does any
    run with ``--overwrite``. A quick run is held to the same rule in its own
    directory."""
    if args.overwrite:
        return
    path = output_dir(args.out, args.quick if quick is None else quick) / f"{name}.json"
    if not path.exists():
        return
    held, described = _recorded_command(path)
    if held is not None and same_run(parser, held, command):
        return
    parser.error(f"{path} holds {described}, not this run's `{command}`; pass --out DIR to "
                 f"write elsewhere, or --overwrite to replace it")


def benchmark_main(name: str, doc: str, argv, run, to_markdown, configure=None,
                   figure=None, file_name=None, check=None) -> int:
    """The usual ``main(argv)`` of a benchmark: parse ``--quick``/``--out`` (plus
    what ``configure(parser)`` adds), ``res = run(args)``, print
    ``to_markdown(res)`` and write the report (with ``figure(res)`` if given).
    The files are ``name.*``, or ``file_name(args).*`` for a setting that gets
    files of its own (``train --model cnn`` writes ``train_cnn.*``).
    ``check(args, parser)``, given, refuses a combination of arguments with
    ``parser.error`` before anything runs; so does :func:`refuse_to_replace`
    a report made by another command."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks {name}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    if configure is not None:
        configure(parser)
    args = parse_args(parser, argv)
    if check is not None:
        check(args, parser)
    report_name, command = file_name(args) if file_name else name, command_line(name, argv)
    refuse_to_replace(parser, args, report_name, command)
    res = run(args)
    markdown = to_markdown(res)
    print(markdown)
    paths = write_report(report_name, res, markdown, figure=figure(res) if figure else None,
                         out_dir=args.out, quick=args.quick, command=command)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


# ------------------------------------------------------------------- machine
def run_or_skip(run, *args):
    """``(run(*args), None)``, or ``(None, why)`` when ``run`` needs a dataset
    that is not installed (:class:`tinynet.data.DatasetNotFoundError`, whose
    message says how to install it): a benchmark skips such a part, saying
    why, instead of failing with a traceback (or stops with that message when
    nothing is left to run)."""
    from tinynet.data import DatasetNotFoundError
    try:
        return run(*args), None
    except DatasetNotFoundError as exc:
        return None, str(exc)


def _blas_info() -> str:
    import numpy as np
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        return "unknown"


def _numba_info() -> dict:
    try:
        import numba
    except ImportError:
        return {"numba": None}
    info = {"numba": numba.__version__}
    try:
        # Numba's pool starts as tinynet's kernels are imported; a benchmark whose
        # kernels ran in worker processes has not started it in this one, so start
        # it here as tinynet does, and the layer read is the one the kernels use.
        from tinynet.kernels import config
        config.start_pool()
    except ImportError:
        pass
    try:
        info["threading_layer"] = numba.threading_layer()
    except ValueError:  # the pool could not be started
        info["threading_layer"] = "not initialised"
    info["threading_layer_config"] = (os.environ.get("NUMBA_THREADING_LAYER")
                                      or str(getattr(numba.config, "THREADING_LAYER", "?")))
    info["num_threads"] = numba.config.NUMBA_NUM_THREADS
    info["disable_jit"] = bool(numba.config.DISABLE_JIT)
    return info


def _version(module: str):
    if module not in sys.modules:
        try:
            __import__(module)
        except Exception:
            return None
    return getattr(sys.modules[module], "__version__", "?")


def cpu_counts() -> dict:
    """``{"cores": physical cores (None where Linux's CPU topology in /sys cannot
    tell), "threads": hardware threads (logical CPUs, ``os.cpu_count()``),
    "usable": the logical CPUs this process may run on}``: what a report says
    of the machine, rather than a count written into its text."""
    threads = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else threads
    cores = set()
    for topology in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            cores = set()
            break
    return {"cores": len(cores) or None, "threads": threads, "usable": usable}


def cpu_text(counts: dict) -> str:
    """``"2 cores, 2 threads"`` (``"8 threads"`` without the cores; ``", 4 usable"``
    when this process may run on fewer), from :func:`cpu_counts`."""
    text = (f"{counts['cores']} cores, " if counts.get("cores") else "") + \
        f"{counts['threads']} threads"
    usable = counts.get("usable")
    return text + (f", {usable} usable" if usable and usable != counts["threads"] else "")


def machine_info() -> dict:
    """Cores, CPU, Python, NumPy + BLAS, Numba + threading layer, tinynet backend,
    and the versions of the peers (torch, scikit-learn) when importable."""
    import numpy as np
    from tinynet.kernels.choices import cpu_model
    info = {
        "cores": os.cpu_count(),  # (logical CPUs; "cpu_counts" tells cores from threads)
        "cpu_counts": cpu_counts(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas_info(),
        **_numba_info(),
        "torch": _version("torch"),
        "sklearn": _version("sklearn"),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        from tinynet import kernels
        info["tinynet_backend"] = kernels.get_backend()
        from tinynet.kernels import blas
        measured = blas.measured()
        info["tinynet_gemm"] = blas.get_gemm() + (
            " (" + ", ".join(f"{v} at {k} thread(s)" for k, v in measured.items()) + ")"
            if measured else "")
    except Exception:
        info["tinynet_backend"] = None
    return info


def machine_markdown(info: dict | None = None) -> str:
    """One line describing the machine, for the top of a Markdown report."""
    info = info or machine_info()
    cpus = cpu_text(info["cpu_counts"]) if "cpu_counts" in info else f"{info['cores']} cores"
    parts = [f"{cpus} ({info['cpu']})", f"Python {info['python']}",
             f"NumPy {info['numpy']} ({info['blas']})"]
    if info.get("numba"):
        parts.append(f"Numba {info['numba']} (threading layer: {info['threading_layer']})")
    if info.get("tinynet_backend"):
        parts.append(f"tinynet backend {info['tinynet_backend']}")
    if info.get("tinynet_gemm"):
        parts.append(f"GEMM engine {info['tinynet_gemm']}")
    for peer in ("torch", "sklearn"):
        if info.get(peer):
            parts.append(f"{peer} {info[peer]}")
    return "Machine: " + ", ".join(parts) + "."


# -------------------------------------------------------------------- timing
def measure(fn, repeats: int = 7, warmup: int = 1, min_repeat_time: float = 0.02,
            number: int | None = None) -> dict:
    """Time ``fn()``: warm-up calls, then ``repeats`` repeats of ``number`` calls.

    ``number`` (calls per repeat) defaults to enough calls for one repeat to
    last ``min_repeat_time`` seconds, so microsecond kernels are not timed at
    the clock's resolution. Returns seconds *per call*:
    ``{"median", "min", "times", "number"}``; report the median.
    """
    for _ in range(warmup):
        fn()
    if number is None:
        number = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_repeat_time or number >= 1 << 20:
                break
            number *= max(2, min(10, int(min_repeat_time / max(elapsed, 1e-9)) + 1))
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return {"median": statistics.median(times), "min": min(times), "times": times,
            "number": number}


def ratio(a, b):
    """``a / b`` or None when either is missing or ``b`` is zero."""
    if a is None or b is None or not b:
        return None
    return a / b


# ------------------------------------------------------------------ markdown
def fmt(value, digits: int = 3) -> str:
    """A table cell: ``-`` for missing, ``1.23k`` style for large numbers."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)):
        v = float(value)
        if abs(v) >= 1e6:
            return f"{v / 1e6:.{digits}g}M"
        if abs(v) >= 1e4:
            return f"{v / 1e3:.{digits}g}k"
        if isinstance(value, int):
            return str(value)
        return f"{v:.{digits}g}"
    return str(value)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table; cells go through :func:`fmt`."""
    cells = [[fmt(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


# ------------------------------------------------------------------- writing
def _write_set(files: list[tuple[Path, bytes]]) -> None:
    """Write ``(path, data)`` pairs as one set through tinynet's atomic writer
    (:func:`tinynet.atomic.atomic_write_all`): all written, then renamed in
    the order given."""
    from tinynet.atomic import atomic_write_all

    for path, _ in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_all([(path, lambda f, data=data: f.write(data)) for path, data in files])


def _jsonable(obj):
    try:
        import numpy as np
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def provenance_markdown(command: str | None, machine: dict) -> str:
    """How a report was made, for its end: ``Command: `...``` (when known) and
    the date in UTC (``machine["time_utc"]``, the JSON's time)."""
    date = time.strftime("%Y-%m-%d %H:%M UTC",
                         time.strptime(machine["time_utc"], "%Y-%m-%dT%H:%M:%SZ"))
    lines = []
    if command:
        lines.append(f"Command: `{command}`")
    lines.append(f"Date: {date}")
    return "\n\n".join(lines)


def _canonical(results) -> str:
    """``results`` as the JSON text of their record, keys sorted: two runs'
    results compare equal whatever their key order, with NaN equal to NaN
    and an int key equal to the string a JSON file reads back."""
    as_read = json.loads(json.dumps(results, default=_jsonable))  # keys now all strings
    return json.dumps(as_read, sort_keys=True)


def _figure_is_stale(out: Path, name: str, results) -> bool:
    """Whether ``<out>/<name>.png`` is known to show results other than
    ``results``, which are about to be written without a figure.

    A figure lands with its report as one set, so it shows the results of the
    ``<name>.json`` beside it: when that JSON records other results, the
    figure is of another run, and a report without a figure of its own must
    not leave it beside the new tables. When the JSON records the same
    results (a re-rendering on a machine without matplotlib), or cannot be
    read (nothing is known of the figure), the figure stays: a report never
    deletes a figure it does not know to be stale."""
    try:
        earlier = json.loads((out / f"{name}.json").read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return _canonical(earlier) != _canonical(results)


def write_report(name: str, results: dict, markdown: str, figure=None,
                 out_dir: str | Path | None = None, quick: bool = False,
                 command: str | None = None, machine: dict | None = None) -> list[Path]:
    """Write ``<name>.json`` (``benchmark``, ``command``, ``quick``, ``machine``
    info and ``results``), ``<name>.md`` and, given a matplotlib ``figure``,
    ``<name>.png`` into :func:`output_dir` ``(out_dir, quick)``. The Markdown is
    ``markdown`` between :data:`QUICK_NOTE` (quick runs) and the lines of
    :func:`provenance_markdown` and :func:`machine_markdown`. The files land
    as one set, the ``.json`` last (module docstring): if anything fails before
    the renames, the previous report stays whole. A report without a figure
    (no matplotlib, nothing to plot) then removes the ``.png`` of its name if
    that shows other results (:func:`_figure_is_stale`), and leaves it
    otherwise. Returns the paths written (``.json``, ``.md``, ``.png``).

    ``machine`` (default: :func:`machine_info` now) is the run's machine and
    date: a report re-rendered from an earlier run's JSON passes that run's
    ``"machine"``, so that it keeps the date and machine its numbers are from."""
    out = output_dir(out_dir, quick)
    machine = machine_info() if machine is None else machine
    payload = {"benchmark": name, "command": command, "quick": bool(quick),
               "machine": machine, "results": results}
    record = (json.dumps(payload, indent=2, default=_jsonable) + "\n").encode()
    text = ((QUICK_NOTE + "\n\n" if quick else "") + markdown.rstrip() + "\n\n"
            + provenance_markdown(command, machine) + "\n\n" + machine_markdown(machine) + "\n")
    files = []  # in the order of the renames: the .json, the record, last
    if figure is not None:
        import io
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        files.append((out / f"{name}.png", buf.getvalue()))
    files += [(out / f"{name}.md", text.encode()), (out / f"{name}.json", record)]
    stale = figure is None and _figure_is_stale(out, name, results)  # (before the new JSON)
    _write_set(files)
    if stale:
        (out / f"{name}.png").unlink(missing_ok=True)  # an earlier run's: not this report's
    return [path for path, _ in reversed(files)]
