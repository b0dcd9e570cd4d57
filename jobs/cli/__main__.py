"""``python -m jobs.cli``: the ``colorstyle`` command (what ``colorstyle submit`` runs on the cluster)."""

from jobs.cli import main

raise SystemExit(main())
