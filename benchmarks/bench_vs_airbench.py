#!/usr/bin/env python3
"""cnnlab's recipe tiers against airbench94 on the same data, in one process.

Order: one epoch of the seed recipe (the yardstick that carries over between machines),
then airbench94 and each tier of ``cnnlab.recipes.TIERS`` take turns, epoch by epoch
(``--in-turn``: each from start to end before the next). Taking turns is the fair race on a
machine whose speed drifts: on the 2-core VMs here it swung 2-3x within minutes, so a recipe
trained whole after another could be timed in a different spell of the machine; in turns,
each recipe's epochs are spread over the same spells. Each runs in a thread of its own, one
computing at a time, and its clock stops while it waits (:class:`Relay`). For each it prints
the test accuracy against elapsed time after every epoch (evaluation off the clock, as
airbench measures), the final accuracy with test-time augmentation (on the clock), the time
to 80/85/88/90/92 %, and each time as a ratio to airbench94's and in seed-recipe epochs.
Below 1.0 means cnnlab got there first. ``--json FILE`` also writes
``{"airbench94": {"time_to": {"0.85": s or null, ...}, "final_tta": 0.9038, ...}, "<tier>": ...}``
(accuracies as fractions). A run with a given seed repeats its accuracies. The tiers' are
the same in turns and ``--in-turn``; airbench94's differ after its first epoch, because its
loader draws from torch's global random numbers, which each tier re-seeds as it starts.

airbench94 is Keller Jordan's recipe from the ``airbench`` package (0.1.8, MIT licence;
``pip install -e ".[benchmarks]"``): its network pieces, loader, whitening, Lookahead and
evaluation are imported from the package, and only ``airbench.utils.train`` is ported, line
by line, with these changes and no others:

1. Device: the CPU. ``make_net94`` ends in ``.half().cuda()``, so the network is rebuilt from
   the package's own layers with its hyper-parameters, in float32 weights (BatchNorm stays
   float32, as there), channels_last as there. ``CifarLoader(..., gpu="cpu")``, and its
   images converted from float16 to float32 after loading (float16 arithmetic is slow on a
   CPU, and float32 machines need float32 inputs).
2. Precision: bfloat16 autocast around the forward pass and loss, and around the
   evaluations (on the GPU the half-precision network evaluates in half precision), where
   the CPU has bfloat16 instructions (``cnnlab.settings.autocast_dtype``); float32 elsewhere.
3. Timers: ``time.perf_counter()`` instead of CUDA events; what is on the clock is unchanged
   (whitening, training, the final TTA evaluation; not the per-epoch evaluations).
4. Data: this copy of CIFAR-10 written in airbench's ``train.pt``/``test.pt`` format, the
   training images in a fixed random order (the original CIFAR-10 files are not sorted by
   class, and airbench whitens from the first 5,000; an ImageFolder copy lists them class
   by class). The per-epoch test accuracy is recorded with its elapsed time.
5. A seed (``--seed``, for both recipes), where airbench draws a fresh one per run.
6. After each epoch's evaluation, off the clock, the turn passes to the next recipe
   (``after_epoch``).

    python benchmarks/bench_vs_airbench.py                       # ../shared/data, all tiers
    python benchmarks/bench_vs_airbench.py --json run.json --seed 1
    python benchmarks/bench_vs_airbench.py --tiers fast          # skip the other tiers
    python benchmarks/bench_vs_airbench.py --in-turn             # each recipe whole, in turn
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from common import (
    add_data_argument,
    images_per_second,
    machine_line,
    real_cifar10,
    run_relay,
    seed_recipe,
)
from torch import nn

from cnnlab import seed_everything
from cnnlab.callbacks import LambdaCallback
from cnnlab.data import DecodedImages, decode_images, load_cifar10
from cnnlab.recipes import TIERS, cifar10_fast
from cnnlab.settings import autocast_dtype, keep_freed_memory

LEVELS = (0.80, 0.85, 0.88, 0.90, 0.92)


def airbench_data(train: DecodedImages, test: DecodedImages, folder: Path, seed: int = 0) -> None:
    """Write ``train.pt`` and ``test.pt`` as airbench's ``CifarLoader`` reads them (uint8
    NHWC images, labels, class names), the training images in a fixed random order."""
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(seed))
    for name, data, index in (("train", train, order), ("test", test, None)):
        images, labels = (data.images, data.labels) if index is None else (
            data.images[index], data.labels[index])  # fmt: skip
        torch.save({"images": images.permute(0, 2, 3, 1).contiguous(), "labels": labels,
                    "classes": list(data.classes)}, folder / f"{name}.pt")  # fmt: skip


def make_net94_cpu() -> nn.Sequential:
    """airbench's ``make_net94`` from the package's own layers, without ``.half().cuda()``."""
    from airbench import lib_airbench94 as ab

    widths, momentum = ab.hyp["net"]["widths"], ab.hyp["net"]["batchnorm_momentum"]
    net = nn.Sequential(
        ab.Conv(3, 24, 2, padding=0, bias=True), nn.GELU(),
        ab.ConvGroup(24, widths["block1"], momentum),
        ab.ConvGroup(widths["block1"], widths["block2"], momentum),
        ab.ConvGroup(widths["block2"], widths["block3"], momentum),
        nn.MaxPool2d(3), ab.Flatten(), nn.Linear(widths["block3"], 10, bias=False),
        ab.Mul(ab.hyp["net"]["scaling_factor"]),
    )  # fmt: skip
    net[0].weight.requires_grad = False
    return net.to(memory_format=torch.channels_last)


def triangle(steps: int, start: float = 0, end: float = 0, peak: float = 0.5) -> torch.Tensor:
    """airbench's learning-rate multiples (nested in its ``train``): linear from ``start``
    up to 1 at ``peak`` of the steps, then down to ``end``."""
    xp = torch.tensor([0, int(peak * steps), steps])
    fp = torch.tensor([start, 1, end])
    x = torch.arange(1 + steps)
    m = (fp[1:] - fp[:-1]) / (xp[1:] - xp[:-1])
    b = fp[:-1] - (m * xp[:-1])
    indices = torch.clamp(torch.sum(torch.ge(x[:, None], xp[None, :]), 1) - 1, 0, len(m) - 1)
    return m[indices] * x + b[indices]


def train94_cpu(data: Path, dtype: torch.dtype | None,
                after_epoch: Callable[[], None] = lambda: None) -> dict:  # fmt: skip
    """``airbench.utils.train`` with airbench94's hyper-parameters, on the CPU (the changes
    are listed at the top of this file). Returns the accuracy curve and the final TTA one.
    ``after_epoch`` runs off the clock after each epoch's evaluation (:class:`Relay`)."""
    from airbench import lib_airbench94 as ab
    from airbench.utils import CifarLoader, LookaheadState, evaluate, init_whitening_conv

    hyp = ab.hyp
    opt = hyp["opt"]
    amp = lambda: torch.autocast("cpu", dtype or torch.bfloat16, enabled=dtype is not None)  # noqa: E731
    train_loader = CifarLoader(str(data), train=True, batch_size=opt["batch_size"],
                               aug=hyp["aug"], altflip=True, gpu="cpu")  # fmt: skip
    test_loader = CifarLoader(str(data), train=False, batch_size=2000, gpu="cpu")
    for loader in (train_loader, test_loader):
        loader.images = loader.images.float()
    epochs, batch_size, momentum = opt["train_epochs"], opt["batch_size"], opt["momentum"]
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = opt["lr"] / kilostep_scale
    wd = opt["weight_decay"] * batch_size / kilostep_scale
    lr_biases = lr * opt["bias_scaler"]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=opt["label_smoothing"], reduction="none")
    total_train_steps = math.ceil(len(train_loader) * epochs)

    model = make_net94_cpu()
    norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
    other_params = [p for k, p in model.named_parameters() if "norm" not in k and p.requires_grad]
    optimizer = torch.optim.SGD(
        [dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
         dict(params=other_params, lr=lr, weight_decay=wd / lr)],
        momentum=momentum, nesterov=True)  # fmt: skip
    lr_schedule = triangle(total_train_steps, start=0.2, end=0.07, peak=0.23)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: lr_schedule[i])
    alpha_schedule = 0.95**5 * (torch.arange(total_train_steps + 1) / total_train_steps) ** 3
    lookahead_state = LookaheadState(model)

    start = time.perf_counter()
    init_whitening_conv(model[0], train_loader.normalize(train_loader.images[:5000]))
    total_time_seconds = time.perf_counter() - start
    curve, current_steps = [], 0
    for epoch in range(math.ceil(epochs)):
        model[0].bias.requires_grad = epoch < opt["whiten_bias_epochs"]
        start = time.perf_counter()
        model.train()
        for inputs, labels in train_loader:
            with amp():
                outputs = model(inputs)
                loss = loss_fn(outputs, labels).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            current_steps += 1
            if current_steps % 5 == 0:
                lookahead_state.update(model, decay=alpha_schedule[current_steps].item())
            if current_steps >= total_train_steps:
                lookahead_state.update(model, decay=1.0)
                break
        total_time_seconds += time.perf_counter() - start
        with amp():
            curve.append((total_time_seconds, evaluate(model, test_loader, tta_level=0)))
        print(f"  airbench94 epoch {epoch + 1}: {curve[-1][1]:.2%} at {curve[-1][0]:.0f} s",
              flush=True)  # fmt: skip
        after_epoch()
    start = time.perf_counter()
    with amp():
        final = evaluate(model, test_loader, hyp["net"]["tta_level"])
    total_time_seconds += time.perf_counter() - start
    return {"curve": curve, "final_tta": final, "seconds": total_time_seconds,
            "epochs": epochs}  # fmt: skip


def run_tier(name: str, train: DecodedImages, test: DecodedImages, seed: int,
             after_epoch: Callable[[], None] = lambda: None) -> dict:  # fmt: skip
    """One tier of ``cnnlab.recipes.TIERS``, measured as ``cifar10_fast`` measures;
    ``after_epoch`` runs off the clock after each epoch's evaluation (:class:`Relay`)."""
    relay = LambdaCallback(on_epoch_end=lambda state: after_epoch())
    relay.order = 100  # after the epoch's accuracy is measured
    result = cifar10_fast(train, test, name, device="cpu", progress=False, seed=seed,
                          callbacks=[relay])  # fmt: skip
    for epoch, (seconds, accuracy) in enumerate(result.curve[:-1], 1):
        print(f"  {name} epoch {epoch}: {accuracy:.2%} at {seconds:.0f} s", flush=True)
    return {"curve": result.curve[:-1], "final_tta": result.test_accuracy,
            "seconds": result.seconds, "epochs": result.recipe.epochs}  # fmt: skip


def compute_seconds(
    net: nn.Module, batch: int, sizes: list[tuple[int, float]], bf16: bool
) -> float:
    """Training compute of a run, in seconds per image: ``epochs`` at ``px`` for each of
    ``sizes``, timed on random tensors (:func:`common.images_per_second`)."""
    return sum(epochs / images_per_second(net, batch, px, steps=3, channels_last=True, bf16=bf16)
               for px, epochs in sizes if epochs)  # fmt: skip


def float32_factors(tiers: list[str], rounds: int = 3) -> dict[str, float]:
    """How much longer each recipe's training would take in float32 than in bfloat16: the
    ratio of their training steps' compute, weighted by the epochs at each image size (a
    float32 CPU runs the same kernels as this one's float32 path). Each ratio is the median
    of ``rounds``, the recipes measured in turn in each round, so that a slow spell of the
    machine lands on one round of every recipe rather than on every round of one."""
    from cnnlab.models import FastNet

    shapes = {"airbench94": (make_net94_cpu(), 1024, [(32, 9.9)])}
    for name in tiers:
        tier, low = TIERS[name], TIERS[name].epochs_at_low_res
        shapes[name] = (FastNet(widths=tier.widths), tier.batch_size,
                        [(tier.low_res, low), (32, tier.epochs - low)])  # fmt: skip
    ratios: dict[str, list[float]] = {name: [] for name in shapes}
    for _ in range(rounds):
        for name, shape in shapes.items():
            ratios[name].append(compute_seconds(*shape, bf16=False)
                                / compute_seconds(*shape, bf16=True))  # fmt: skip
    return {name: statistics.median(values) for name, values in ratios.items()}


def time_to(run: dict, level: float) -> float | None:
    """When a run first reached ``level``: after an epoch, or at the end with TTA."""
    points = [*run["curve"], (run["seconds"], run["final_tta"])]
    return next((seconds for seconds, accuracy in points if accuracy >= level), None)


def report(runs: dict[str, dict], seed_epoch: float) -> None:
    """The table: time to each level, final TTA accuracy, ratios to airbench94."""
    cells = lambda values: "".join(f"{v:>9}" for v in values)  # noqa: E731
    print(f"\n{'recipe':<14}{'epochs':>7}" + cells(f"{t:.0%}" for t in LEVELS)
          + f"{'final TTA':>11}{'total':>8}")  # fmt: skip
    for name, run in runs.items():
        times = [time_to(run, t) for t in LEVELS]
        print(f"{name:<14}{run['epochs']:>7}" + cells(f"{s:.0f} s" if s else "-" for s in times)
              + f"{run['final_tta']:>11.2%}{run['seconds']:>6.0f} s")  # fmt: skip
    reference = runs.get("airbench94")
    print(f"\nratio to airbench94 at each level (below 1.0: cnnlab first); seed-recipe "
          f"epoch = {seed_epoch:.1f} s")  # fmt: skip
    for name, run in runs.items():
        ratios = []
        for level in LEVELS:
            mine, theirs = time_to(run, level), reference and time_to(reference, level)
            ratios.append(f"{mine / theirs:.2f}x" if mine and theirs else "-")
        epochs = [f"{s / seed_epoch:.2f}" if (s := time_to(run, t)) else "-" for t in LEVELS]
        print(
            f"{name:<14}{'':>7}" + cells(ratios) + "   in seed-recipe epochs: " + " ".join(epochs)
        )


def as_json(runs: dict[str, dict], factors: dict[str, float] | None = None) -> dict:
    """``{"<recipe>": {"time_to": {"0.85": seconds or None}, "final_tta": fraction, ...}}``,
    with each recipe's ``float32_factor`` when the run estimated one."""
    written = {name: {"time_to": {f"{t:.2f}": time_to(run, t) for t in LEVELS},
                      "final_tta": run["final_tta"], "seconds": run["seconds"],
                      "epochs": run["epochs"], "curve": [list(p) for p in run["curve"]]}
               for name, run in runs.items()}  # fmt: skip
    for name, factor in (factors or {}).items():
        written[name]["float32_factor"] = factor
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--tiers", nargs="+", choices=tuple(TIERS), default=tuple(TIERS))
    parser.add_argument("--seed", type=int, default=0, help="for both recipes")
    parser.add_argument("--json", type=Path, help="also write the run here")
    parser.add_argument("--in-turn", action="store_true",
                        help="each recipe from start to end before the next (the default: "
                             "they take turns epoch by epoch, through the same machine spells)")  # fmt: skip
    args = parser.parse_args()
    try:
        import airbench  # noqa: F401
    except ImportError:
        parser.exit(2, 'airbench is not installed: pip install -e ".[benchmarks]"\n')
    folder = real_cifar10(args.data)
    dtype = autocast_dtype(torch.device("cpu"), "auto")
    print(f"# bench_vs_airbench, real CIFAR-10 from {args.data}, seed {args.seed}")
    print(machine_line("cpu"))
    print(f"# precision: {dtype or torch.float32} for both; freed memory kept for reuse: "
          f"{keep_freed_memory()} (process-wide, both recipes)")  # fmt: skip

    seed_everything(args.seed)
    speed, _ = seed_recipe(folder, 1, torch.device("cpu"))
    seed_epoch = 50_000 / speed
    print(f"seed recipe: one epoch = {seed_epoch:.1f} s", flush=True)
    train = decode_images(load_cifar10(train=True, folder=folder))
    test = decode_images(load_cifar10(train=False, folder=folder))
    with tempfile.TemporaryDirectory() as tmp:
        airbench_data(train, test, Path(tmp))

        def airbench94(after_epoch: Callable[[], None]) -> dict:
            seed_everything(args.seed)
            return train94_cpu(Path(tmp), dtype, after_epoch)

        recipes = {"airbench94": airbench94} | {
            name: partial(run_tier, name, train, test, args.seed) for name in args.tiers
        }
        if args.in_turn:
            runs = {name: recipe(lambda: None) for name, recipe in recipes.items()}
        else:
            print("# the recipes take turns epoch by epoch (--in-turn: one after another)")
            runs = run_relay(recipes)
    report(runs, seed_epoch)
    factors = float32_factors(list(args.tiers)) if dtype is not None else None
    if factors:
        print(
            f"\nestimated for a CPU without {dtype} instructions (float32): each recipe's "
            "times above x its float32/bfloat16 ratio of training compute, measured here"
        )
        for name, factor in factors.items():
            times = [time_to(runs[name], t) for t in LEVELS]
            print(f"{name:<14}{factor:>6.2f}x" + "".join(
                f"{s * factor:>7.0f} s" if s else f"{'-':>9}" for s in times))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(as_json(runs, factors), indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
