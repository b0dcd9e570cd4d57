"""colorstyle jobs: the manifest-driven distributed driver, its Ray actors and entry points.

Orchestration only: models, colour math and I/O formats live in ``colorstyle_core``.
"""
