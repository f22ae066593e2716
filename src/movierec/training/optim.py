"""Optimizer and learning-rate scheduler from config.

`model.optimizer` and `model.scheduler` are either a preset name (today's short names)
or any `torch.optim` class as a Hydra node with `_partial_: true`:

    optimizer: {_target_: torch.optim.RAdam, _partial_: true, decoupled_weight_decay: true}
    scheduler: {_target_: torch.optim.lr_scheduler.OneCycleLR, _partial_: true, max_lr: 0.05,
                total_steps: 100}

`model.lr` and `model.weight_decay` are passed to the optimizer unless its node sets them.
A preset is only a node written down once; Hydra's `instantiate` builds both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate

from movierec.errors import ConfigError

OPTIMIZERS: dict[str, dict[str, Any]] = {
    "adam": {"_target_": "torch.optim.Adam"},
    "adamw": {"_target_": "torch.optim.AdamW"},
    "sgd": {"_target_": "torch.optim.SGD", "momentum": 0.9},
}
SCHEDULERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "cosine": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR"},
    "plateau": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau"},
    "step": {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 50},
}
PLATEAU = "torch.optim.lr_scheduler.ReduceLROnPlateau"


def optimizer_node(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """The `_target_` node of `model.optimizer` (a preset name or a node)."""
    return _node("model.optimizer", value, OPTIMIZERS)  # type: ignore[return-value]


def scheduler_node(value: str | Mapping[str, Any] | None, kwargs: Mapping | None) -> dict | None:
    """The `_target_` node of `model.scheduler` with `model.scheduler_kwargs` merged in."""
    node = _node("model.scheduler", "none" if value is None else value, SCHEDULERS)
    if node is None:
        return None
    return {**node, **dict(kwargs or {})}


def build_optimizer(
    node: Mapping[str, Any], params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    settings = {"lr": lr, "weight_decay": weight_decay}
    settings.update({k: v for k, v in node.items() if not k.startswith("_")})
    target = {"_target_": node["_target_"], "_partial_": True}
    return _instantiate("model.optimizer", target)(params, **settings)


def build_scheduler(
    node: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    max_epochs: int,
    mode: str | None,
) -> Any:
    """The scheduler; cosine runs over `max_epochs` and plateau watches in `mode` (the
    selection's min or max) unless the node says otherwise."""
    settings = {k: v for k, v in node.items() if not k.startswith("_")}
    target = str(node["_target_"])
    if target.endswith("CosineAnnealingLR"):
        settings["T_max"] = settings.get("T_max") or max(1, max_epochs)
    if target == PLATEAU:
        settings.setdefault("mode", mode)
    return _instantiate("model.scheduler", {"_target_": target, "_partial_": True})(
        optimizer, **settings
    )


def is_plateau(node: Mapping[str, Any] | None) -> bool:
    return node is not None and str(node.get("_target_")) == PLATEAU


def _node(key: str, value: Any, presets: Mapping[str, Any]) -> dict[str, Any] | None:
    if isinstance(value, str):
        if value not in presets:
            raise ConfigError(
                f"{key}={value!r} is not valid; expected one of {', '.join(presets)} or a node "
                "with _target_ (a torch.optim class) and _partial_: true"
            )
        preset = presets[value]
        return None if preset is None else {**preset, "_partial_": True}
    if isinstance(value, Mapping) and isinstance(value.get("_target_"), str):
        try:
            get_class(value["_target_"])
        except Exception:  # Hydra raises ImportError or ValueError depending on the path
            raise ConfigError(
                f"{key}._target_={value['_target_']!r}: cannot import it (expected a class "
                "path such as torch.optim.AdamW)"
            ) from None
        return dict(value)
    raise ConfigError(
        f"{key}={value!r} is not valid; expected a preset name ({', '.join(presets)}) or a "
        "node with _target_ and _partial_: true"
    )


def _instantiate(key: str, node: dict[str, Any]) -> Any:
    try:
        return instantiate(node)
    except InstantiationException as err:
        raise ConfigError(f"{key}: {err}") from None
