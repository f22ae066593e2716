"""Passwords out of everything the project prints, logs, tags or writes.

A tracking or study store may be given as `postgresql+psycopg://user:password@host/db`.
`redact` is the one function that hides the password of every such URI inside a text:
MLflow params, tags and the config artifact (`movierec.tracking`), log records
(`redact_log_records`, installed by every program), one-line errors (`movierec.cli`) and
the config files Hydra writes into a run folder (`redact_files`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

MASK = "***"
# scheme://user:password@ — the password runs to the last "@" before a "/" or a blank, as
# in SQLAlchemy's and urllib's parsing (an "@" inside a password should be %40)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*):[^\s/'\"]*@")
# …?password=… in a query string (libpq and SQLAlchemy accept it there too)
_QUERY = re.compile(r"([?&](?:password|passwd|pwd)=)[^&\s'\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the password of every URI in it replaced by `***`."""
    if "://" not in text and "=" not in text:
        return text
    return _QUERY.sub(rf"\g<1>{MASK}", _USERINFO.sub(rf"\g<1>:{MASK}@", text))


def redact_files(paths: Iterable[str | Path]) -> None:
    """Rewrite each existing file whose text holds a password, with it redacted."""
    for path in map(Path, paths):
        if not path.is_file():
            continue
        text = path.read_text()
        hidden = redact(text)
        if hidden != text:
            path.write_text(hidden)


def redact_log_records() -> None:
    """From now on every log record's message is redacted when it is made, whichever
    handler (console, `train.log`, a library's own) later writes it. Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def make_record(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        message = record.getMessage()
        hidden = redact(message)
        if hidden != message:
            record.msg, record.args = hidden, ()
        return record

    make_record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_record)
