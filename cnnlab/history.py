"""What a training run measured: one :class:`EpochResult` per pass over a loader, and the
:class:`History` of every epoch that ``fit`` returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import settings

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


@dataclass
class EpochResult:
    """Mean loss and accuracy over one pass through a loader."""

    loss: float
    accuracy: float
    samples: int

    def __str__(self) -> str:
        return settings.smoke_note(
            f"loss {self.loss:.4f}, accuracy {self.accuracy:.2%} on {self.samples:,} images"
        )


def is_better(monitor: str, value: float, best: float | None, min_delta: float = 0.0) -> bool:
    """Whether ``value`` improves on ``best`` for ``monitor``: higher for accuracies, lower
    for losses, by more than ``min_delta``.

    Example:
        >>> is_better("val_acc", 0.8, 0.7), is_better("val_loss", 0.8, 0.7)
        (True, False)
    """
    if best is None:
        return True
    if monitor.endswith("acc"):
        return value > best + min_delta
    return value < best - min_delta


@dataclass
class History:
    """What ``fit`` measured, one entry per epoch (validation entries are None without data).

    ``lr`` is the largest learning rate of the optimizer's parameter groups at the start
    of the epoch (with discriminative rates, the head's). ``precision`` is the dtype the
    epoch's forward passes ran in (``"float32"``, ``"bfloat16"`` or ``"float16"``):
    ``precision="auto"`` picks by hardware, so two machines may differ.

    Example:
        >>> h = History()
        >>> h.append(epoch=1, train_loss=2.0, train_acc=0.2, val_loss=1.9, val_acc=0.3,
        ...          lr=1e-3, seconds=4.2, precision="float32")
        >>> h.best_epoch("val_acc"), len(h)
        (1, 1)
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_acc: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    precision: list[str | None] = field(default_factory=list)

    def append(self, **row: float | str | None) -> None:
        """Add one epoch's numbers (every field by name; ``precision`` may be left out)."""
        for name in self.__dataclass_fields__:
            getattr(self, name).append(row.get(name) if name == "precision" else row[name])

    @classmethod
    def from_dict(cls, saved: dict[str, list]) -> History:
        """A History from :meth:`as_dict`'s lists; fields that an older cnnlab did not
        save (``precision``) are None for the saved epochs.

        Example:
            >>> History.from_dict({"epoch": [1], "train_loss": [1.0], "train_acc": [0.5],
            ...     "val_loss": [None], "val_acc": [None], "lr": [0.1], "seconds": [2.0]}).precision
            [None]
        """
        n = len(saved["epoch"])
        return cls(**{name: list(saved.get(name, [None] * n)) for name in cls.__dataclass_fields__})

    def precision_summary(self) -> str:
        """Which dtype the epochs ran in, e.g. ``"bfloat16"`` or, when a resumed run changed
        machine, ``"bfloat16 (epochs 1-2), float32 (epochs 3-4)"``.

        Example:
            >>> h = History(epoch=[1, 2], precision=["bfloat16", "float32"])
            >>> h.precision_summary()
            'bfloat16 (epochs 1-1), float32 (epochs 2-2)'
        """
        runs: list[list] = []
        for epoch, name in zip(self.epoch, self.precision, strict=True):
            label = name or "unknown"
            if runs and runs[-1][0] == label:
                runs[-1][2] = epoch
            else:
                runs.append([label, epoch, epoch])
        if len(runs) == 1:
            return runs[0][0]
        return ", ".join(f"{name} (epochs {a}-{b})" for name, a, b in runs)

    def __len__(self) -> int:
        return len(self.epoch)

    def as_dict(self) -> dict[str, list]:
        """The history as plain lists, e.g. for ``pandas.DataFrame(history.as_dict())``."""
        return asdict(self)

    def last(self) -> dict[str, float | None]:
        """The last epoch's metrics by name (``{"train_loss": ..., "val_acc": ...}``)."""
        return {name: getattr(self, name)[-1] for name in METRICS} if len(self) else {}

    def best_epoch(self, monitor: str = "val_loss") -> int:
        """The epoch with the best ``monitor`` value (lowest loss, highest accuracy)."""
        values = getattr(self, monitor)
        scored = [(v, e) for v, e in zip(values, self.epoch, strict=True) if v is not None]
        if not scored:
            raise ValueError(f"no {monitor} recorded: pass val_loader to fit() to measure it")
        pick = max if monitor.endswith("acc") else min
        return pick(scored, key=lambda ve: ve[0])[1]

    def __str__(self) -> str:
        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        lines = ["epoch  train_loss  train_acc  val_loss  val_acc        lr  seconds"]
        for i in range(len(self)):
            lines.append(
                f"{self.epoch[i]:>5}  {self.train_loss[i]:>10.4f}  {self.train_acc[i]:>9.2%}  "
                f"{fmt(self.val_loss[i], '8.4f'):>8}  {fmt(self.val_acc[i], '7.2%'):>7}  "
                f"{self.lr[i]:>8.2e}  {self.seconds[i]:>7.1f}"
            )
        if len(self):
            lines.append(f"precision: {self.precision_summary()}")
        if settings.fast_mode():
            lines.append(settings.SMOKE_TAG)
        return "\n".join(lines)
