"""Benchmark of the bone-safety-cds service (issue "Speed"): ``python -m bench``.

A script that prints figures, not a test. See ``bench/README.md``.
"""
