"""Exceptions whose message is meant for the user.

Every error a user can cause (a bad file, a bad setting, a missing dataset) is a
`MovieRecError`; the CLI edge (`movierec.cli`) prints its message on one line and exits
non-zero. Anything else is a programming error and keeps its traceback.
"""


class MovieRecError(Exception):
    """A problem the user can fix; the message says what and where."""


class DataError(MovieRecError):
    """Input data is missing, malformed or inconsistent."""


class DownloadError(MovieRecError):
    """A dataset archive could not be fetched or failed verification."""


class ConfigError(MovieRecError):
    """A setting is invalid; the message names the key and the allowed values."""


class StoppedOnPurpose(Exception):
    """A run stopped by a tuner on purpose (a pruned trial), not failed: tracking ends its
    run KILLED, tagged `optuna.state=PRUNED` (`tuning.pruning.TrialPruned`)."""
