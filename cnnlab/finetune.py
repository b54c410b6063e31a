"""Fine-tuning strategies side by side: frozen backbone, last block, discriminative LRs,
gradual unfreezing, and training from scratch, each measured the same way.

Each strategy is a recipe for *which parameters train, at which learning rate, when*;
:func:`run_strategy` applies one to a fresh model and reports accuracy, wall time and
trainable parameters, so that notebook 04 and ``benchmarks/bench_fine_tuning.py`` compare
them with one call each.

Example:
    >>> from cnnlab.models import SmallResNet
    >>> print(STRATEGIES["frozen"])
    frozen backbone, new head
    >>> result = run_strategy("frozen", lambda pretrained: SmallResNet(width=8),
    ...                       train_loader, test_loader, epochs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from . import settings
from .callbacks import Callback, GradualUnfreezing
from .engine import History, evaluate, fit
from .freezing import discriminative_param_groups, freeze_to, layer_groups
from .models import count_parameters

STRATEGIES: dict[str, str] = {
    "frozen": "frozen backbone, new head",
    "last_block": "last block unfrozen, small LR",
    "discriminative": "all layers, discriminative LRs",
    "gradual": "gradual unfreezing",
    "scratch": "from scratch",
}


@dataclass
class StrategyResult:
    """One strategy's outcome: test accuracy, training seconds, parameters trained."""

    strategy: str
    accuracy: float
    seconds: float
    trainable: int
    total: int
    history: History

    @property
    def description(self) -> str:
        return STRATEGIES[self.strategy]


def configure(
    strategy: str, model: nn.Module, lr: float, epochs: int
) -> tuple[torch.optim.Optimizer, list[Callback]]:
    """Freeze ``model`` for ``strategy`` and build its optimizer and ``fit`` callbacks.

    The head always trains at ``lr``. ``last_block`` trains the last group before the head
    at ``lr / 10``; ``discriminative`` and ``gradual`` spread LRs from ``lr / 100`` (first
    group) to ``lr`` (head); ``gradual`` unfreezes one more group every
    ``epochs // groups`` epochs (at least one).

    Example:
        >>> from cnnlab.models import SmallResNet
        >>> model = SmallResNet(width=8)
        >>> optimizer, callbacks = configure("last_block", model, lr=1e-3, epochs=4)
        >>> [(g["name"], g["lr"]) for g in optimizer.param_groups]
        [('layer3', 0.0001), ('head', 0.001)]
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {list(STRATEGIES)}")
    names = list(layer_groups(model))
    callbacks: list[Callback] = []
    if strategy == "frozen":
        freeze_to(model, -1)
        groups = [g for g in discriminative_param_groups(model, lr) if g["name"] == "head"]
    elif strategy == "last_block":
        freeze_to(model, -2)
        lrs = [lr / 10] * (len(names) - 1) + [lr]
        groups = discriminative_param_groups(model, lrs)[-2:]
    elif strategy == "discriminative":
        freeze_to(model, 0)
        groups = discriminative_param_groups(model, (lr / 100, lr))
    elif strategy == "gradual":
        groups = discriminative_param_groups(model, (lr / 100, lr))
        schedule = GradualUnfreezing(model, every=max(1, epochs // len(names)))
        schedule.apply(1)
        callbacks.append(schedule)
    else:  # scratch: the caller built the model without pretrained weights
        freeze_to(model, 0)
        groups = [{"params": list(model.parameters()), "lr": lr, "name": "all"}]
    return torch.optim.Adam(groups, lr=lr), callbacks


def run_strategy(
    strategy: str,
    make_model: Callable[[bool], nn.Module],
    train_loader: Iterable,
    test_loader: Iterable,
    *,
    epochs: int,
    lr: float = 1e-3,
    device: torch.device | str | None = None,
    progress: bool = False,
    seed: int = 0,
) -> StrategyResult:
    """Train a fresh model with ``strategy`` and measure it on ``test_loader``.

    ``make_model(pretrained)`` builds the network: with the pretrained backbone for every
    strategy but ``"scratch"``, which gets ``pretrained=False``.

    Example:
        >>> result = run_strategy("gradual", make_model, train_loader, test_loader,
        ...                       epochs=5)  # doctest: +SKIP
        >>> print(f"{result.description}: {result.accuracy:.1%} in {result.seconds:.0f} s")
        ... # doctest: +SKIP
    """
    from .settings import seed_everything

    seed_everything(seed)
    model = make_model(strategy != "scratch")
    optimizer, callbacks = configure(strategy, model, lr, epochs)
    start = time.perf_counter()
    history = fit(model, train_loader, epochs=epochs, optimizer=optimizer, device=device,
                  callbacks=callbacks, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - start
    params = count_parameters(model)
    accuracy = evaluate(model, test_loader, device=device).accuracy
    return StrategyResult(strategy, accuracy, seconds, params.trainable, params.total, history)


def format_results(results: Sequence[StrategyResult]) -> str:
    """A plain-text table of strategy results.

    Example:
        >>> print(format_results(results))  # doctest: +SKIP
    """
    lines = [f"{'strategy':<32} {'test acc':>9} {'seconds':>8} {'trained params':>15}"]
    for r in results:
        trained = f"{r.trainable:,} ({settings.share(r.trainable / r.total)})"
        lines.append(f"{r.description:<32} {r.accuracy:>9.1%} {r.seconds:>8.1f} {trained:>15}")
    return "\n".join(lines)
