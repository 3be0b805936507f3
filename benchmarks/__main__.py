"""``python -m benchmarks <name> [options]``; without a name, list the benchmarks."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

# Modules in this package that are infrastructure, not benchmarks (no ``main``).
_NOT_BENCHMARKS = {"report", "threads", "__main__"}


def available() -> list[str]:
    """Names of the benchmark modules (each has a ``main(argv)``)."""
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)])
                  if not m.name.startswith("_") and m.name not in _NOT_BENCHMARKS)


def _summary(name: str) -> str:
    """The first paragraph of the benchmark's docstring, on one line (a summary
    wrapped over two lines is not cut after the first)."""
    path = Path(__file__).resolve().parent / f"{name}.py"
    try:
        import ast
        doc = ast.get_docstring(ast.parse(path.read_text()))
    except (OSError, SyntaxError):
        doc = None
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc else ""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help", "list"):
        print("usage: python -m benchmarks <name> [options]   (<name> --help for options)\n")
        print("benchmarks:")
        for name in names:
            print(f"  {name:<12} {_summary(name)}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in names:
        from difflib import get_close_matches
        close = get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"unknown benchmark {name!r}{hint} (known: {', '.join(names)})", file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
