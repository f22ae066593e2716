"""The Spark session the engine runs in: settings (`data.spark`), start, stop, JVM release.

A session is started per build with the settings below and stopped after it, with its JVM
(whose driver heap would otherwise stay for the whole training); an active session (a
notebook's, a test's) is used as it is and left running.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movierec.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PYSPARK_MISSING = "data.engine=spark needs pyspark: pip install 'movierec[spark]'"
SPARK_KEYS = ("master", "driver_memory", "log_level", "conf")
# Settings the engine needs whatever the user adds: no web UI (no port to bind), no
# progress bars in the output, Arrow for the small pandas <-> Spark hand-overs.
BASE_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# JVM logging: Spark's own messages at `log_level`; start-up chatter (no native Hadoop,
# hostname resolution) and the advice on task sizes (the small pandas hand-overs travel
# inside tasks) only if it is an error. The JVM's one "Using incubator modules" line comes
# from Spark's launcher and cannot be turned off.
LOG4J2 = """\
rootLogger.level = {level}
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = error
"""
# The master URLs Spark accepts; anything else is refused before a JVM starts.
MASTER_URL = re.compile(
    r"local(\[([1-9][0-9]*|\*)(,[1-9][0-9]*)?\])?|local-cluster\[[^\]]+\]"
    r"|spark://\S+|yarn|k8s://\S+"
)


def require_pyspark() -> None:
    """`ConfigError` saying how to install pyspark if it cannot be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(PYSPARK_MISSING) from None


@dataclass(frozen=True)
class SparkSettings:
    """`data.spark`: master URL, driver heap, Spark's log level, extra Spark settings.

    `driver_memory` is the driver JVM's heap (`spark.driver.memory`); in local mode it is
    also the executors' memory. Spark's own default, 1g, runs out of memory caching 25M
    ratings in local mode; 4g does not.
    """

    master: str = "local[*]"
    driver_memory: str = "4g"
    log_level: str = "WARN"
    conf: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SparkSettings:
        unknown = sorted(set(values) - set(SPARK_KEYS))
        if unknown:
            raise ConfigError(
                f"data.spark.{unknown[0]} is not a setting; expected one of {', '.join(SPARK_KEYS)}"
            )
        conf = values.get("conf") or {}
        if not isinstance(conf, Mapping):
            raise ConfigError(f"data.spark.conf={conf!r}: expected a mapping of Spark settings")
        master = str(values.get("master") or cls.master)
        if not MASTER_URL.fullmatch(master):
            raise ConfigError(
                f"data.spark.master={master!r} is not a Spark master URL; expected local[N], "
                "local[*], spark://host:port, yarn or k8s://host:port"
            )
        return cls(
            master=master,
            driver_memory=str(values.get("driver_memory") or cls.driver_memory),
            log_level=str(values.get("log_level") or cls.log_level).upper(),
            conf=_flatten(conf),
        )


def _flatten(conf: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"spark": {"driver": {"memory": "4g"}}} (Hydra's `+data.spark.conf.spark.driver.memory=4g`)
    → {"spark.driver.memory": "4g"}."""
    flat: dict[str, str] = {}
    for key, value in conf.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


@contextlib.contextmanager
def spark_session(settings: SparkSettings, keep_jvm: bool = False) -> Iterator[SparkSession]:
    """The active SparkSession if there is one (a notebook's, a test's), else a new one for
    `settings`, stopped on exit, with its JVM unless `keep_jvm`. A Spark that does not
    start (no Java, master refused) is a `ConfigError`."""
    require_pyspark()
    warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per connection
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    with tempfile.TemporaryDirectory(prefix="movierec-spark-") as folder:
        log4j = Path(folder) / "log4j2.properties"
        log4j.write_text(LOG4J2.format(level=settings.log_level.lower()))
        conf = dict(BASE_CONF)
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={log4j.as_uri()}"
        conf["spark.driver.memory"] = settings.driver_memory
        conf.update(settings.conf)
        builder = SparkSession.builder.master(settings.master).appName("movierec-preprocess")
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()
            spark.sparkContext.setLogLevel(settings.log_level)
        except Exception as err:  # Py4J / PySpark errors: no Java, master refused, …
            reason = " ".join(str(err).split())[:300]
            if "JAVA_GATEWAY_EXITED" in reason:
                reason += " (Spark needs Java 17 or later on PATH or in JAVA_HOME)"
            raise ConfigError(
                f"Spark did not start (data.spark.master={settings.master!r}): {reason}"
            ) from None
    try:
        yield spark
    finally:
        spark.stop()
        if not keep_jvm:
            _release_jvm()


def _release_jvm() -> None:
    """End PySpark's JVM, which otherwise lives as long as Python and keeps the driver heap
    (gigabytes after a large build) through training. A later session starts a new one."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None or getattr(gateway, "proc", None) is None:
        return
    SparkContext._gateway = None
    SparkContext._jvm = None
    with contextlib.suppress(Exception):
        gateway.shutdown()
    gateway.proc.stdin.close()  # PySpark's gateway server exits when its stdin closes
    try:
        gateway.proc.wait(timeout=30)
    except Exception:
        gateway.proc.kill()
