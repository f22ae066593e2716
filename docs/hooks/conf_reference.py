"""The configuration reference, written from `src/movierec/conf/` at every docs build.

A MkDocs hook (mkdocs.yml `hooks:`): `on_files` adds the generated page
`reference/configuration.md`, so the reference cannot drift from the YAML files. Each key's
default comes from the parsed YAML; its allowed values and meaning from the comment on its
line (or the comment block just above it), as the configs write them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

CONF_DIR = Path(__file__).resolve().parents[2] / "src" / "movierec" / "conf"
PAGE = "reference/configuration.md"
_MAPPING = object()  # a key holding a mapping: its keys below are its default
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[^\s#:-][^:#]*?|\"[^\"]+\"|'[^']+'):(?:\s|$)")

INTRO = """# Configuration reference

Every key of the packaged configs (`src/movierec/conf/`), with its default and, where the
config says, its allowed values. This page is generated from the YAML files at each build
(`docs/hooks/conf_reference.py`). Override any key on the command line (`model.lr=0.005`),
pick a file of a group with `group=name` (`model=gcn`, `trainer=ddp_cpu`), and see
[Training and selection](../training.md) for how Hydra composes them. `???` marks a key a
config must set; `${…}` is an OmegaConf interpolation.
"""


def flatten(node: object, prefix: str = "") -> dict[str, object]:
    """Dotted key → value, every key: a non-empty mapping is descended and also listed
    (as `None`, its leaves are its default)."""
    if not (isinstance(node, dict) and node):
        return {prefix[:-1]: node} if prefix else {}
    keys: dict[str, object] = {prefix[:-1]: _MAPPING} if prefix else {}
    for key, value in node.items():
        keys.update(flatten(value, f"{prefix}{key}."))
    return keys


def comments_by_key(text: str) -> tuple[str, dict[str, str]]:
    """The file's leading comment, and each dotted key's comment (its line's, else the
    block just above it)."""
    header: list[str] = []
    notes: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    block: list[str] = []
    seen_key = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment = stripped.lstrip("#").strip()
            if not comment.startswith("@package"):
                (block if seen_key else header).append(comment)
            continue
        match = _KEY_LINE.match(line)
        if not stripped or not match:
            block = [] if not stripped else block
            continue
        seen_key = True
        indent, key = len(match["indent"]), match["key"].strip("\"'")
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
        _, _, trailing = line.partition(" #")
        note = trailing.strip() or " ".join(block)
        if note:
            notes[".".join(k for _, k in stack)] = note
        block = []
    return " ".join(header), notes


def _cell(text: str) -> str:
    """Text for a table cell: no column break, no HTML tag, no Markdown link."""
    for char, entity in (("&", "&amp;"), ("|", "&#124;"), ("<", "&lt;"), ("[", "&#91;")):
        text = text.replace(char, entity)
    return text.replace("\n", " ")


def _code(text: str) -> str:
    return f"`{text}`"  # a table cell's pipe inside a code span splits nothing


def _value(key: str, value: object) -> str:
    if key == "defaults" and isinstance(value, list):  # Hydra's defaults list
        return ", ".join(_code(_entry(item)) for item in value)
    if value is _MAPPING:
        return "(the keys below)"
    if value == "???":
        return "`???` (required)"
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _code(shown) if shown != "" else '`""`'


def _entry(item: object) -> str:
    """One entry of a defaults list as Hydra writes it: `group: option` or a name."""
    if isinstance(item, dict):
        return ", ".join(
            f"{key}: {json.dumps(value) if value is None else value}" for key, value in item.items()
        )
    return str(item)


def render_file(path: Path, conf_dir: Path) -> str:
    """One config file: a heading, its description, a table of its keys."""
    text = path.read_text(encoding="utf-8")
    header, notes = comments_by_key(text)
    rows = [
        f"| {_code(key)} | {_value(key, value)} | {_cell(notes.get(key, ''))} |"
        for key, value in flatten(yaml.safe_load(text) or {}).items()
        if value is not _MAPPING or key in notes
    ]
    name = path.relative_to(conf_dir).as_posix()
    parts = [f"### `{name}`", ""]
    if header:
        parts += [_cell(header), ""]
    if rows:
        parts += ["| key | default | allowed values / meaning |", "| --- | --- | --- |", *rows]
    return "\n".join(parts) + "\n"


def render(conf_dir: Path = CONF_DIR) -> str:
    """The whole page: the top-level configs, then one section per config group."""
    files = sorted(conf_dir.rglob("*.yaml"))
    groups: dict[str, list[Path]] = {}
    for path in files:
        group = path.relative_to(conf_dir).parts[0] if path.parent != conf_dir else ""
        groups.setdefault(group, []).append(path)
    sections = [INTRO, '<div class="conf-reference" markdown>\n']
    for group, paths in sorted(groups.items()):
        title = f"`{group}=`" if group else "Programs (top-level configs)"
        sections.append(f"## {title}\n")
        if group and (conf_dir / group / "_base_.yaml").exists():
            sections.append(f"Every `{group}/<name>.yaml` starts from `{group}/_base_.yaml`.\n")
        sections += [render_file(path, conf_dir) for path in paths]
    return "\n".join([*sections, "</div>\n"])


def on_files(files, config):  # MkDocs hook
    """Add the generated reference page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files
