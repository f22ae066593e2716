"""The API reference pages, one per layer, written at every docs build from the modules
under `src/movierec/`: a module added to a layer appears without editing the docs.

A MkDocs hook (mkdocs.yml `hooks:`): `on_files` adds `api/<page>.md`, each a list of
mkdocstrings `::: movierec.<module>` directives that render the modules' docstrings.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "movierec"

#: page → (title, what it holds, the modules or packages it documents, under movierec/)
PAGES = {
    "data": ("Data", "Reading, checking, caching and splitting ratings; the graph.", ["data"]),
    "models": ("Models", "The networks (`RatingNet`) and their parts.", ["models"]),
    "ranking": (
        "Objective and ranking",
        "The training objective and the top-K ranking protocol and metrics.",
        ["objective.py", "ranking"],
    ),
    "training": ("Training", "The LightningModule and what it needs.", ["training"]),
    "tracking": ("Tracking", "MLflow runs, params, lineage, plots, registry.", ["tracking"]),
    "serving": ("Serving", "Bundles, the recommender, new users, the MLflow model.", ["serving"]),
    "tuning": ("Tuning", "Optuna studies behind the project's Hydra sweeper.", ["tuning"]),
    "tasks": (
        "Tasks and utilities",
        "What the programs run, and the shared utilities.",
        ["tasks", "errors.py", "checks.py", "config.py", "cli.py", "console.py", "redaction.py"],
    ),
}


def modules(part: str, package: Path = PACKAGE) -> list[str]:
    """Dotted names of a module file, or of every module of a package and its subpackages."""
    path = package / part
    files = [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))
    return [
        ".".join([package.name, *file.relative_to(package).with_suffix("").parts])
        for file in files
        if file.name != "__init__.py" and "conf" not in file.relative_to(package).parts
    ]


def render(page: str) -> str:
    title, intro, parts = PAGES[page]
    names = [name for part in parts for name in modules(part)]
    return "\n\n".join([f"# {title}", intro, *(f"::: {name}" for name in names)]) + "\n"


def on_files(files, config):  # MkDocs hook
    """Add the generated API pages to the site's files."""
    from mkdocs.structure.files import File

    for page in PAGES:
        files.append(File.generated(config, f"api/{page}.md", content=render(page)))
    return files
