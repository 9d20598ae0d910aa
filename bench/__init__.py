"""Performance benchmarks of the exporter against the naive script and the machine (issue 7).

Run with ``make bench`` (or ``python -m bench``); see docs/performance.md.
"""
