"""Checked exercises: for each one, the solution passes; realistic wrong answers get
their own diagnosis (the test names the words the learner must read); a broken answer
(it raises, returns None, or is of the wrong type) gets a message, not a traceback; and
the placeholder None reads "not answered yet"."""

from __future__ import annotations

import json

import pytest

import cnnlab.exercises as exercises
from cnnlab.exercises import ALL, ex01

EVERY = [q for items in ALL.values() for q in items]

SETUP = """
import math
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms
from PIL import Image, ImageOps
from cnnlab.callbacks import Callback
from cnnlab.models import SimpleCNN
"""

# (exercise, answer source defining `answer`, words the diagnosis must contain); two or
# more per exercise, each a mistake learners make.
WRONG = [
    (
        "01.1",
        "answer = {'a': (8, 16, 32, 32), 'b': (8, 16, 16, 16), 'c': (8, 32, 8, 8)}",
        "without padding",
    ),
    (
        "01.1",
        "answer = {'a': (8, 16, 28, 28), 'b': (8, 16, 14, 14), 'c': (8, 32, 6, 6)}",
        "left out the padding",
    ),
    (
        "01.1",
        "answer = {'a': (8, 28, 28, 16), 'b': (8, 14, 14, 16), 'c': (8, 7, 7, 32)}",
        "channels-last",
    ),
    (
        "01.2",
        "answer = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))",
        "still sized for 32-pixel",
    ),
    (
        "01.2",
        "class N(nn.Module):\n def __init__(s):\n  super().__init__(); s.c = nn.Conv2d(3, 8, 3, padding=1); s.l = nn.Linear(8 * 8 * 8, 10)\n def forward(s, x):\n  return s.l(F.max_pool2d(s.c(x), 4).view(-1, 8 * 8 * 8))\nanswer = N()",
        "rows came out",
    ),
    (
        "02.1",
        "def answer(model, loader):\n    right = seen = 0\n    with torch.no_grad():\n        for x, y in loader:\n            right += (model(x).argmax(1) == y).sum().item(); seen += len(y)\n    return right / seen",
        "model.eval()",
    ),
    (
        "02.1",
        "def answer(model, loader):\n    model.eval(); accs = []\n    with torch.no_grad():\n        for x, y in loader:\n            accs.append((model(x).argmax(1) == y).float().mean().item())\n    return sum(accs) / len(accs)",
        "mean of the batch accuracies",
    ),
    (
        "02.1",
        "def answer(model, loader):\n    model.eval(); right = seen = 0\n    with torch.no_grad():\n        for x, y in loader:\n            right += (model(x).argmax(1) == y).sum().item(); seen += len(y)\n    return 100 * right / seen",
        "percentage",
    ),
    (
        "02.1",
        "def answer(model, loader):\n    model.eval(); right = seen = 0\n    for x, y in loader:\n        right += (model(x).argmax(1) == y).sum().item(); seen += len(y)\n    return right / seen",
        "torch.no_grad()",
    ),
    ("02.2", "answer = SimpleCNN()", "no nn.BatchNorm2d"),
    (
        "02.2",
        "answer = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))",
        "num_features must equal",
    ),
    (
        "02.2",
        "answer = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm1d(8), nn.Flatten(), nn.LazyLinear(10))",
        "BatchNorm1d is for flat",
    ),
    (
        "03.1",
        "from torchvision.models import resnet18\nanswer = resnet18(); answer.fc = nn.Linear(512, 5)",
        "backbone still trains",
    ),
    (
        "03.1",
        "from torchvision.models import resnet18\nanswer = resnet18(); answer.fc = nn.Linear(512, 5); answer.requires_grad_(False)",
        "head is frozen too",
    ),
    (
        "03.1",
        "from torchvision.models import resnet18\nanswer = resnet18(); answer.requires_grad_(False); answer.fc = nn.Linear(2048, 5)",
        "ResNet-50",
    ),
    (
        "03.2",
        "answer = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])",
        "add transforms.Normalize",
    ),
    (
        "03.2",
        "answer = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])",
        "squashes",
    ),
    (
        "03.2",
        "answer = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))])",
        "CIFAR-10's mean",
    ),
    (
        "03.2",
        "answer = transforms.Compose([transforms.Resize(256), transforms.ToTensor()])",
        "not square",
    ),
    (
        "04.1",
        "def answer(model):\n    model.train()",
        "frozen BatchNorm layers are in training mode",
    ),
    ("04.1", "def answer(model):\n    model.eval()", "eval mode too"),
    (
        "04.1",
        "def answer(model):\n    model.train()\n    for m in model.modules():\n        if isinstance(m, nn.BatchNorm2d): m.eval()",
        "also those in layers that train",
    ),
    (
        "04.2",
        "def answer(model):\n    return torch.optim.Adam(model.parameters(), lr=1e-3)",
        "frozen parameters",
    ),
    (
        "04.2",
        "def answer(model):\n    return torch.optim.Adam([{'params': model.fc.parameters(), 'lr': 1e-5}, {'params': model.layer4.parameters(), 'lr': 1e-4}, {'params': model.layer3.parameters(), 'lr': 1e-3}])",
        "wrong way",
    ),
    (
        "04.2",
        "def answer(model):\n    return torch.optim.Adam([{'params': model.fc.parameters(), 'lr': 1e-3}, {'params': model.layer4.parameters(), 'lr': 1e-4}])",
        "layer3 is not in the optimizer",
    ),
    (
        "05.1",
        "def answer(model, opt, x, y):\n    loss = F.cross_entropy(model(x), y); loss.backward(); opt.step(); return loss.item()",
        "zero_grad",
    ),
    (
        "05.1",
        "def answer(model, opt, x, y):\n    loss = F.cross_entropy(model(x).softmax(1), y); opt.zero_grad(); loss.backward(); opt.step(); return loss.item()",
        "softmax before cross_entropy",
    ),
    (
        "05.1",
        "def answer(model, opt, x, y):\n    loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); return loss.item()",
        "optimizer.step()",
    ),
    (
        "05.1",
        "def answer(model, opt, x, y):\n    loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step(); return loss",
        "loss.item()",
    ),
    ("05.2", "class Never(Callback):\n    pass\nanswer = Never()", "went on for all 3 epochs"),
    (
        "05.2",
        "class High(Callback):\n    def on_epoch_end(self, state):\n        if not state.history.train_loss[-1] < 10: state.stop_training = True\nanswer = High()",
        "healthy run",
    ),
    (
        "05.2",
        "class Raiser(Callback):\n    def on_epoch_end(self, state):\n        if not math.isfinite(state.history.train_loss[-1]): raise ValueError('loss is nan')\nanswer = Raiser()",
        "set state.stop_training",
    ),
    ("05.2", "class Late(Callback):\n    pass\nanswer = Late", "that is the class"),
    (
        "06.1",
        "def answer(path):\n    m = SimpleCNN(dropout=0.5); m.load_state_dict(torch.load(path)); return m.eval()",
        "weights_only=True",
    ),
    (
        "06.1",
        "def answer(path):\n    m = SimpleCNN(dropout=0.5); m.load_state_dict(torch.load(path, weights_only=True)); return m",
        "training mode",
    ),
    (
        "06.1",
        "def answer(path):\n    return torch.load(path, weights_only=True)",
        "state_dict itself",
    ),
    (
        "06.2",
        "def answer(model, optimizer, epoch):\n    return {'model': model, 'optimizer': optimizer.state_dict(), 'epoch': epoch}",
        "object itself",
    ),
    (
        "06.2",
        "def answer(model, optimizer, epoch):\n    return {'model': model.state_dict(), 'epoch': epoch}",
        "optimizer's state is missing",
    ),
    (
        "06.2",
        "def answer(model, optimizer, epoch):\n    return {'model': model.state_dict(), 'optimizer': optimizer.state_dict()}",
        "epoch is missing",
    ),
    (
        "07.1",
        "def answer(labels, k, e):\n    t = torch.full((len(labels), k), e / (k - 1)); t[torch.arange(len(labels)), labels] = 1 - e; return t",
        "other K - 1 classes",
    ),
    (
        "07.1",
        "def answer(labels, k, e):\n    t = torch.full((len(labels), k), e / k); t[torch.arange(len(labels)), labels] = 1 - e; return t",
        "its share of e",
    ),
    ("07.2", "def answer(model, x):\n    return (model(x) + model(x.flip(-2))) / 2", "upside down"),
    ("07.2", "def answer(model, x):\n    return model(x)", "plain logits"),
    ("08.1", "def answer(path):\n    return Image.open(path).convert('RGB')", "on its side"),
    (
        "08.1",
        "def answer(path):\n    return ImageOps.exif_transpose(Image.open(path))",
        "not every photo is RGB",
    ),
    (
        "08.1",
        "import numpy as np\ndef answer(path):\n    return np.asarray(Image.open(path).convert('RGB'))[..., ::-1]",
        "NumPy array",
    ),
    (
        "08.2",
        "answer = transforms.Compose([transforms.Resize(224), transforms.ToTensor()])",
        "keeps each photo's shape",
    ),
    (
        "08.2",
        "answer = transforms.Compose([transforms.RandomCrop(224), transforms.ToTensor()])",
        "cannot be cut out",
    ),
    (
        "08.2",
        "answer = transforms.Compose([transforms.RandomResizedCrop(224)])",
        "end with a tensor",
    ),
    (
        "09.1",
        "def answer(model, x, target):\n    model.eval(); x = x.clone().requires_grad_(True); model(x)[:, target].sum().backward(); return x.grad.amax(dim=1)",
        "without abs()",
    ),
    (
        "09.1",
        "def answer(model, x, target):\n    model.eval(); x = x.clone().requires_grad_(True); model(x)[:, target].sum().backward(); return x.grad.abs()",
        "one map per image",
    ),
    (
        "09.1",
        "def answer(model, x, target):\n    model.eval(); model(x)[:, target].sum().backward(); return x.grad.abs().amax(dim=1)",
        "no gradient on the image",
    ),
    ("09.2", "answer = 'classifier.4'", "Linear layer"),
    ("09.2", "answer = 'features.0'", "first convolution"),
    ("09.2", "answer = 'layer4'", "no layer"),
    (
        "10.1",
        "def answer(n, rank, world):\n    return list(range(n))[rank::world]",
        "waiting forever",
    ),
    (
        "10.1",
        "def answer(n, rank, world):\n    return list(range(n))  # no sampler: all of it",
        "same images",
    ),
    (
        "10.2",
        "def answer(base_lr, base_batch, per_process, world):\n    return base_lr",
        "unchanged",
    ),
    (
        "10.2",
        "def answer(base_lr, base_batch, per_process, world):\n    return base_lr * world",
        "number of processes only",
    ),
]


def _by_name(name: str):
    notebook, number = name.split(".")
    return next(q for q in ALL[notebook] if q.number == int(number))


def _solution_answer(q):
    namespace: dict = {}
    exec(compile(SETUP + q.solution_code, f"<solution {q.name}>", "exec"), namespace)
    defined = [k for k in namespace if k not in _setup_names() and not k.startswith("__")]
    return namespace[defined[-1]]  # the last name the solution defines is its answer


def _setup_names() -> set[str]:
    namespace: dict = {}
    exec(SETUP, namespace)
    return set(namespace)


def test_there_are_at_least_twenty_and_two_per_lesson():
    assert len(EVERY) >= 20
    assert sorted(ALL) == [f"{n:02d}" for n in range(1, 11)]
    assert all(len(items) >= 2 for items in ALL.values())


@pytest.mark.parametrize("q", EVERY, ids=lambda q: f"{q.notebook}.{q.number}")
def test_the_solution_passes_and_every_exercise_has_a_hint(q):
    result = q.evaluate(_solution_answer(q))
    assert result.correct, result.message
    assert q.hint_text and q.solution_code


@pytest.mark.parametrize(
    ("name", "source", "words"), WRONG, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)]
)
def test_a_wrong_answer_is_diagnosed_by_name(name, source, words):
    namespace: dict = {}
    exec(compile(SETUP + source, "<learner's cell>", "exec"), namespace)
    result = _by_name(name).evaluate(namespace["answer"])
    assert not result.correct
    assert words in result.message, result.message


def test_every_exercise_has_at_least_two_diagnosed_mistakes():
    counts = {f"{q.notebook}.{q.number}": 0 for q in EVERY}
    for name, _, _ in WRONG:
        counts[name] += 1
    assert all(n >= 2 for n in counts.values()), counts


def _raises(*args, **kwargs):
    return [1, 2, 3][10]  # an IndexError in the learner's own code


BROKEN = [_raises, lambda *a, **k: None, 42, "nonsense", object()]


@pytest.mark.parametrize("q", EVERY, ids=lambda q: f"{q.notebook}.{q.number}")
def test_a_broken_answer_gets_a_message_not_a_traceback(q):
    for answer in BROKEN:
        result = q.evaluate(answer)  # must not raise
        assert not result.correct and result.message, (answer, result)
        if answer is _raises and "raised" in result.message:
            assert "IndexError" in result.message and "in your code, line" in result.message


@pytest.mark.parametrize("q", EVERY, ids=lambda q: f"{q.notebook}.{q.number}")
def test_the_placeholder_reads_not_answered_yet(q, capsys):
    q.check(None)
    assert "Not answered yet" in capsys.readouterr().out


def test_progress_records_correct_answers_in_the_working_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ex01.q1.check({"a": (8, 16, 32, 32), "b": (8, 16, 16, 16), "c": (8, 32, 8, 8)})
    assert not (tmp_path / exercises.PROGRESS_FILE).exists()  # a wrong answer records nothing
    ex01.q1.check(_solution_answer(ex01.q1))
    assert json.loads((tmp_path / exercises.PROGRESS_FILE).read_text()) == {"01": [1]}
    capsys.readouterr()
    exercises.progress()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("01 CNN basics") and "1 of 2" in lines[0] and "✓ 1" in lines[0]
    assert len(lines) == 10 and "0 of 2" in lines[1]


def test_a_damaged_progress_file_does_not_break_a_check(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / exercises.PROGRESS_FILE).write_text("{not json")
    ex01.q1.check(_solution_answer(ex01.q1))
    assert "✓ Correct" in capsys.readouterr().out
    assert json.loads((tmp_path / exercises.PROGRESS_FILE).read_text()) == {"01": [1]}


def test_a_learners_error_names_their_line(capsys):
    namespace: dict = {}
    source = "def accuracy(model, loader):\n    total = 0\n    return total / len([])\n"
    exec(compile(source, "<learner's cell>", "exec"), namespace)
    message = exercises.ex02.q1.evaluate(namespace["accuracy"]).message
    assert "ZeroDivisionError" in message and "line 3" in message


def test_colabs_dist_packages_count_as_library_code_not_the_learners():
    """On Colab, PyTorch lives in /usr/local/lib/python3.x/dist-packages: an error raised
    inside it must be reported at the learner's line, not at torch's."""
    from cnnlab.exercises.base import _in_library

    assert _in_library("/usr/local/lib/python3.12/dist-packages/torch/nn/modules/linear.py")
    assert _in_library(str(__import__("torch").__file__))
    assert not _in_library("/tmp/ipykernel_4242/1234567.py")  # a notebook cell
