"""tinynet's benchmarks: ``python -m benchmarks <name> [options]`` from the repo root.

Each benchmark module ``benchmarks/<name>.py`` defines ``main(argv) -> int``,
measures tinynet and its peers side by side in one run, and writes its
results with :func:`benchmarks.report.write_report`.
"""
