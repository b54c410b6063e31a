"""Checked exercises of notebook 10 (many GPUs and machines): sharding a data set
across processes, and the learning rate for a larger effective batch."""

from __future__ import annotations

import math

from .base import Exercise, Result, call, wrong


def _check_shard(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (shard), not its result")
    n, world = 10, 3
    shards = []
    for rank in range(world):
        indices = call(answer, n, rank, world, what="your shard")
        try:
            shards.append([int(i) for i in indices])
        except TypeError:
            return wrong("shard must return a list of indices")
    taken = [i for s in shards for i in s]
    if any(i < 0 or i >= n for i in taken):
        return wrong(f"an index outside 0..{n - 1}: shard the positions 0 to n - 1")
    if len({len(s) for s in shards}) > 1:
        return wrong(f"the shards have {[len(s) for s in shards]} items: a process with fewer "
                     "batches leaves the others waiting forever in an all-reduce. Pad (repeat "
                     "a few indices) or drop the remainder, so all have the same number")  # fmt: skip
    missing = set(range(n)) - set(taken)
    if len(missing) >= world:
        return wrong(f"indices {sorted(missing)} are in no shard: each image must be seen by "
                     "some process once per epoch (drop at most fewer than world_size)")  # fmt: skip
    repeats = len(taken) - len(set(taken))
    if repeats >= world:
        return wrong("several processes got the same images: rank r takes positions r, "
                     "r + world_size, r + 2 * world_size, ...")  # fmt: skip
    how = "padded" if repeats else ("with the remainder dropped" if missing else "exactly")
    return Result(True, f"disjoint shards of equal size ({how}): what DistributedSampler "
                        "does, after shuffling with the epoch's seed.")  # fmt: skip


def _check_lr(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (ddp_lr), not its result")
    base_lr, base_batch, per_process, world = 0.1, 128, 64, 8
    got = call(answer, base_lr, base_batch, per_process, world, what="your ddp_lr")
    try:
        got = float(got)
    except (TypeError, ValueError):
        return wrong(f"ddp_lr returned {got!r}; return the learning rate, a number")
    want = base_lr * per_process * world / base_batch
    if math.isclose(got, base_lr):
        return wrong("the rate is unchanged, but each step now sees per_process_batch x "
                     "world_size images: scale the rate by that over base_batch")  # fmt: skip
    if math.isclose(got, base_lr * world):
        return wrong("that scales by the number of processes only; the effective batch is "
                     "per_process_batch x world_size, compared with base_batch")  # fmt: skip
    if math.isclose(got, base_lr * math.sqrt(per_process * world / base_batch)):
        return wrong("that is the square-root rule (sometimes used with Adam); the exercise "
                     "asks for the linear scaling rule of Goyal et al.")  # fmt: skip
    if math.isclose(got, base_lr * base_batch / (per_process * world)):
        return wrong("upside down: a larger effective batch takes a larger rate")
    if not math.isclose(got, want):
        return wrong("the linear scaling rule: base_lr x (per_process_batch x world_size) / "
                     "base_batch")  # fmt: skip
    return Result(True, f"{want:g}: four times the effective batch, four times the rate (with "
                        "a warm-up, which the exercise leaves out).")  # fmt: skip


q1 = Exercise(
    "10", 1, "a shard for each process", _check_shard,
    hint_text="Rank r takes every world_size-th position starting at r; pad the list with "
    "its first indices until every rank has ceil(n / world_size).",
    solution_code="""import math

def shard(n, rank, world_size):
    per_rank = math.ceil(n / world_size)
    padded = list(range(n)) + list(range(per_rank * world_size - n))   # repeat a few
    return padded[rank::world_size]""",
)  # fmt: skip
q2 = Exercise(
    "10", 2, "the learning rate on many processes", _check_lr,
    hint_text="The effective batch is per_process_batch x world_size; the rate grows in "
    "proportion to it, from base_lr at base_batch.",
    solution_code="""def ddp_lr(base_lr, base_batch, per_process_batch, world_size):
    return base_lr * per_process_batch * world_size / base_batch""",
)  # fmt: skip
EXERCISES = [q1, q2]
