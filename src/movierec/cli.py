"""The one place user errors are turned into a one-line message and an exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TypeVar

from movierec.errors import MovieRecError
from movierec.redaction import redact

T = TypeVar("T")

USER_ERROR_EXIT_CODE = 2


def run_reporting_user_errors(task: Callable[[], T]) -> T:
    """Run `task`; on a `MovieRecError` print `error: <message>` (any URI's password
    hidden) to stderr and exit 2.

    `SystemExit` is not an `Exception`, so it passes through Hydra's own error handler.
    """
    try:
        return task()
    except MovieRecError as err:
        logging.getLogger("movierec").debug("user error", exc_info=True)
        message = redact(" ".join(str(err).split()))
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
