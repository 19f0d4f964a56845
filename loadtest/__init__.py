"""The load-test kit, not part of the product: the synthetic city, seeding, Locust users and
shapes, and the benchmarks (``bench_*.py``) that record docs/BENCHMARKS.md. It plugs into the
``checkin`` command through the ``checkin.commands`` entry point."""
