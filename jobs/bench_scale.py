"""``python -m jobs.bench_scale``: the name the scale benchmark was asked for; it is :mod:`jobs.bench.scale`."""

from jobs.bench.scale import main

if __name__ == "__main__":
    raise SystemExit(main())
