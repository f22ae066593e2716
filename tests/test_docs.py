"""The documentation checks itself: the commands README.md and the getting-started page
mark as runnable run, and the configuration reference lists every key of the configs.

A runnable block is a fenced block right after a `<!-- docs-test -->` line. Its commands run
in order, in a fresh project folder (MOVIEREC_ROOT), on the real MovieLens-100K from the
mirror; `<run id>` stands for the MLflow run of the last training, and trainings run
`trainer.max_epochs=2` (the test checks that a command works, not what it learns).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

MARKER = "<!-- docs-test -->"
DOCUMENTED = (PROJECT_ROOT / "README.md", PROJECT_ROOT / "docs" / "getting-started.md")
#: installing is what CI does before the tests, not something a test can repeat
NOT_RUN = ("make install",)
SHORT_TRAINING = "trainer.max_epochs=2"
CONF_DIR = PROJECT_ROOT / "src" / "movierec" / "conf"


def runnable_commands(markdown: str) -> list[str]:
    """The commands of every fenced block right after the marker, continuation lines
    joined and trailing comments dropped."""
    commands: list[str] = []
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        assert lines[i + 1].startswith("```"), f"{MARKER} at line {i + 1} is not above a fence"
        block = []
        for body in lines[i + 2 :]:
            if body.startswith("```"):
                break
            block.append(body)
        joined = "\n".join(block).replace("\\\n", " ")
        for command in joined.splitlines():
            command = re.sub(r"\s+#.*$", "", command).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def _argv(command: str, run_id: str | None) -> list[str]:
    """The command as this test runs it: this interpreter, the checkout's scripts, the last
    run id, short trainings."""
    if "<run id>" in command:
        assert run_id, f"{command!r} needs a run id, but no training ran before it"
        command = command.replace("<run id>", run_id)
    argv = shlex.split(command)
    assert argv[0] in ("python", ".venv/bin/python"), f"not a Python command: {command!r}"
    argv[0] = sys.executable
    argv[1] = str(PROJECT_ROOT / argv[1])
    if argv[1].endswith("scripts/train.py"):
        argv.append(SHORT_TRAINING)
    return argv


def test_the_marker_finds_commands_and_joins_continuations():
    text = (
        f"{MARKER}\n```bash\npython a.py x=1  # note\npython b.py \\\n    y=2\n```\n```bash\nz\n```"
    )
    assert runnable_commands(text) == ["python a.py x=1", "python b.py      y=2"]


@pytest.mark.integration
def test_documented_commands_run(real_mirror: Path, tmp_path: Path):
    commands: list[str] = []
    for path in DOCUMENTED:
        found = runnable_commands(path.read_text(encoding="utf-8"))
        assert found, f"{path.name} marks no runnable command"
        found = [c.removeprefix(".venv/bin/") for c in found if not c.startswith(NOT_RUN)]
        commands += [c for c in found if c not in commands]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MOVIEREC_ROOT=str(tmp_path), MOVIELENS_MIRROR=str(real_mirror))
    run_id = None
    for command in commands:
        done = subprocess.run(
            _argv(command, run_id),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (
            f"{command!r} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
        # the result table's last line: the run's page in the MLflow UI
        found = re.search(r"^view\s+http://\S+/runs/([0-9a-f]{32})\s*$", done.stdout, re.MULTILINE)
        run_id = found[1] if found else run_id
    assert run_id, "no documented training printed its MLflow run id"


def _hook(name: str):
    path = PROJECT_ROOT / "docs" / "hooks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaf_keys(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [k for key, value in node.items() for k in _leaf_keys(value, f"{prefix}{key}.")]
    return [prefix[:-1]] if prefix else []  # an empty file has no key


def _sections(page: str) -> dict[str, str]:
    parts = re.split(r"^### `([^`]+)`$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_configuration_reference_lists_every_key_of_every_config():
    sections = _sections(_hook("conf_reference").render(CONF_DIR))
    files = sorted(CONF_DIR.rglob("*.yaml"))
    assert sorted(sections) == sorted(p.relative_to(CONF_DIR).as_posix() for p in files)
    for path in files:
        section = sections[path.relative_to(CONF_DIR).as_posix()]
        for key in _leaf_keys(yaml.safe_load(path.read_text(encoding="utf-8")) or {}):
            assert f"| `{key}` |" in section, f"{path.name}: {key} is not in the reference"


def test_configuration_reference_follows_the_yaml(tmp_path: Path):
    """A key added to a config appears with its default and the comment on its line."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "toy.yaml").write_text(
        "# A toy model.\nnet:\n  _target_: toy.Net\n  width: 8     # 8 | 16 | 32\n"
        "# how the pairs are scored\ndecoder: dot\n",
        encoding="utf-8",
    )
    page = _hook("conf_reference").render(tmp_path)
    assert "## `model=`" in page and "A toy model." in page
    assert "| `net.width` | `8` | 8 &#124; 16 &#124; 32 |" in page
    assert "| `decoder` | `dot` | how the pairs are scored |" in page


def test_the_api_reference_documents_every_module():
    hook = _hook("api_pages")
    pages = "".join(hook.render(page) for page in hook.PAGES)
    package = PROJECT_ROOT / "src" / "movierec"
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if path.name != "__init__.py" and "conf" not in parts:
            assert f"::: {'.'.join(parts)}\n" in pages, f"{path} is on no API page"
