"""What the console shows: our own records and every problem, not third-party chatter.

By default (`verbose=false`) the CLI edge routes Python warnings into logging (they stay in
the run's log file), keeps third-party records below WARNING (Lightning's "GPU available"
and its adverts) and every warning record off the console, and turns off MLflow's
artifact progress bars. `verbose=true` leaves all of it as the libraries print it.
Thin on purpose: logging's own filters do the work; this only chooses them.
"""

from __future__ import annotations

import logging
import os

#: loggers whose INFO records a user reads on the console
SHOWN_LOGGERS = ("movierec", "hydra", "__main__")


class _OursOrProblems(logging.Filter):
    """Our records, and third-party errors (warnings go to the log file only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in SHOWN_LOGGERS:
            return True
        return record.levelno >= logging.ERROR


def quiet_console(verbose: bool) -> None:
    """Apply the console policy above to the handlers logging has now (call it after
    Hydra has configured logging for the job)."""
    if verbose:
        return
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    logging.captureWarnings(True)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) or not isinstance(
            handler, logging.StreamHandler
        ):
            continue
        if not any(isinstance(f, _OursOrProblems) for f in handler.filters):
            handler.addFilter(_OursOrProblems())
