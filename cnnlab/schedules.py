"""Learning-rate schedules for short, large-batch runs, and the linear scaling rule.

A large batch averages the gradient over more images, so each step is less noisy and
can be larger: the *linear scaling rule* (Goyal et al., 2017) multiplies the learning
rate by the same factor as the batch. A large rate at the very first steps, when the
weights are random, can blow the run up; a short *warm-up* raises it linearly from a
small value, and a linear *decay* to zero at the end lets the weights settle.
``torch.optim.lr_scheduler.OneCycleLR`` is the same idea with cosine curves.
"""

from __future__ import annotations

import torch


def scale_lr(lr: float, batch_size: int, reference_batch_size: int = 128) -> float:
    """The linear scaling rule: ``lr`` tuned at ``reference_batch_size``, moved to ``batch_size``.

    Example:
        >>> scale_lr(0.1, batch_size=512, reference_batch_size=128)
        0.4
    """
    return lr * batch_size / reference_batch_size


def warmup_linear_decay(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.2,
    start_factor: float = 0.1,
    end_factor: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Rise linearly to each group's ``lr`` over the first ``warmup_fraction`` of the
    steps (from ``start_factor`` times it), then fall linearly to ``end_factor`` times it
    (zero by default) at the last step. Step it every batch
    (``fit(..., scheduler_interval="step")``).

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = warmup_linear_decay(opt, total_steps=10, warmup_fraction=0.2)
        >>> rates = []
        >>> for _ in range(10):
        ...     rates.append(round(opt.param_groups[0]["lr"], 3))
        ...     opt.step(); sched.step()
        >>> rates
        [0.1, 0.55, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    # at least one step of decay, even when the warm-up rounds up to every step
    warmup = min(round(total_steps * warmup_fraction), total_steps - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return start_factor + (1 - start_factor) * step / warmup
        left = max(0.0, (total_steps - step) / (total_steps - warmup))
        return end_factor + (1 - end_factor) * left

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def named_schedule(name: str, optimizer: torch.optim.Optimizer,
                   total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:  # fmt: skip
    """One of notebook 02's three schedules, built on ``optimizer`` and stepped every batch:

    - ``"constant"``: the optimizer's rate throughout;
    - ``"step"``: the rate divided by 10 after two thirds of the steps (``StepLR`` is the
      general rule: multiply by ``gamma`` every ``step_size`` steps);
    - ``"one-cycle"``: ``OneCycleLR`` up to the optimizer's rate and down to almost zero.

    Build each schedule on its own optimizer: a scheduler changes its optimizer's rate
    when it is created (``OneCycleLR`` sets it to its starting value), so several built on
    one optimizer overwrite each other.

    Example:
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
        >>> sched = named_schedule("step", opt, total_steps=6)
        >>> rates = []
        >>> for _ in range(6):
        ...     rates.append(round(opt.param_groups[0]["lr"], 4)); opt.step(); sched.step()
        >>> rates
        [0.05, 0.05, 0.05, 0.05, 0.005, 0.005]
    """
    base = optimizer.param_groups[0]["lr"]
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, 2 * total_steps // 3),
                                               gamma=0.1)  # fmt: skip
    if name == "one-cycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=base, total_steps=total_steps)
    raise ValueError(f"unknown schedule {name!r}: 'constant', 'step' or 'one-cycle'")
