"""Benchmark harness: reconciler side by side with skopeo and the CNCF distribution registry.

Run it with ``make bench`` (or ``python -m bench``); ``make bench-smoke`` is the tiny run the
test suite also does. See bench/README.md for what each section measures.
"""
