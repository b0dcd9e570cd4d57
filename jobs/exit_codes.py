"""The exit codes of every ``colorstyle`` command (README: "Exit codes")."""

from __future__ import annotations

EXIT_OK = 0
"""Everything asked for was done."""
EXIT_FAILURES = 1
"""The job ran, but some inputs failed (see ``failures.parquet``); validate: some inputs have problems."""
EXIT_FATAL = 2
"""Nothing ran: invalid manifest or arguments, storage unreachable, weights missing, output not writable."""
EXIT_CRASH = 3
"""An internal error (a bug): the traceback is printed."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C; finished work is recorded, a rerun resumes."""
