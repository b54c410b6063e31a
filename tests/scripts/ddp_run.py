"""A training script run by tests/test_distributed.py, under torchrun (two CPU processes)
and alone as the single-process reference. It is what a learner's script looks like: the
same code in both cases, with cnnlab.distributed.setup() at the top. With ``--then-rows
FILE`` the same processes then run the two-process rows of the combination test
(tests/combinations.py), and with ``--then-cli FILE`` ``cnnlab train``: one torchrun
launch for all three, as each launch costs three interpreters."""

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from cnnlab import distributed, seed_everything
from cnnlab.callbacks import ModelCheckpoint
from cnnlab.data import StandInCIFAR10, cifar10_eval_transform, collate_images, make_loader
from cnnlab.engine import fit
from cnnlab.models import SimpleCNN

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--resume", action="store_true")
parser.add_argument("--then-rows", type=Path, help="then the combination rows in FILE (JSON)")
parser.add_argument("--then-cli", type=Path, help="then `cnnlab train --out FILE` here")
parser.add_argument(
    "--reference",
    action="store_true",
    help="one process, the same sample order as two processes together",
)
args = parser.parse_args()

device = distributed.setup()
seed_everything(0)
train = StandInCIFAR10(train=True, size=256, transform=cifar10_eval_transform())
val = StandInCIFAR10(train=False, size=64, transform=cifar10_eval_transform())
if args.reference:  # what DistributedSampler gives two processes, as one stream
    sampler = DistributedSampler(train, num_replicas=1, rank=0, shuffle=True, seed=3)
    loader = DataLoader(train, args.batch, sampler=sampler, collate_fn=collate_images)
else:
    loader = make_loader(train, args.batch, shuffle=True, seed=3, num_workers=0)
model = SimpleCNN(dropout=0.0)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
checkpoints = args.out / "checkpoints"
history = fit(
    model,
    loader,
    make_loader(val, 16, num_workers=0),
    epochs=args.epochs,
    optimizer=optimizer,
    device=device,
    progress=False,
    callbacks=[
        ModelCheckpoint(checkpoints / "last.pt", resume=args.resume, overwrite=not args.resume)
    ],
)
torch.save(model.state_dict(), args.out / f"weights-rank{distributed.rank()}.pt")
if distributed.is_main_process():
    (args.out / "history.json").write_text(json.dumps(history.as_dict()))
    (args.out / "steps.json").write_text(
        json.dumps({"per_epoch": len(loader), "world": distributed.world_size()})
    )
if args.then_rows:  # results-rank{0,1}.json next to the rows' file
    sys.path.insert(0, str(Path(__file__).parent))
    from combo import Row, write_rows

    rows = [Row(**row) for row in json.loads(args.then_rows.read_text())]
    write_rows(rows, args.then_rows.parent)
if args.then_cli:  # the command leaves the process group when it is done
    from cnnlab.cli import main

    assert main(["train", "--epochs", "1", "--batch-size", "32", "--out", str(args.then_cli)]) == 0
distributed.cleanup()
