"""The project's benchmarks: ``make bench`` runs :mod:`bench.run`."""
