"""Hydra search-path plugin: a project folder's own `conf/` beside the packaged configs.

The configs ship inside the package (`pkg://movierec.conf`). A project folder (the one in
$MOVIEREC_ROOT, set by scripts/*.py, else the working directory) may hold a `conf/` of its
own, e.g. `conf/experiment/tuned/<study>.yaml` written by a sweep or machine overrides in
`conf/local/`; when it exists it is searched after the packaged configs, so its files add
to them. Hydra's `--config-dir` adds any other folder.

Importing it (Hydra does, when it discovers plugins, before it composes any config) also
registers the project's resolvers, e.g. `${movierec.run_suffix:}` in the run folder's name.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from movierec.config import register_resolvers

register_resolvers()


class ProjectConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        folder = Path(os.environ.get("MOVIEREC_ROOT") or ".").resolve() / "conf"
        if folder.is_dir():
            search_path.append(provider="movierec-project", path=f"file://{folder}")
