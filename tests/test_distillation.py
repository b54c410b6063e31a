"""Distillation: the loss is Hinton et al.'s, the teacher never trains or changes, and a
student can learn from a teacher alone (no labels at all)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cnnlab import seed_everything
from cnnlab.data import DecodedImages, TensorLoader
from cnnlab.distillation import Distillation, distillation_loss
from cnnlab.engine import evaluate, fit
from cnnlab.models import FastNet, SmallResNet


def test_the_loss_is_kl_at_temperature_times_t_squared_plus_cross_entropy():
    s, t, y = torch.randn(6, 5), torch.randn(6, 5), torch.randint(0, 5, (6,))
    kl = F.kl_div(F.log_softmax(s / 3, 1), F.softmax(t / 3, 1), reduction="batchmean")
    expected = 0.7 * 9 * kl + 0.3 * F.cross_entropy(s, y)
    assert float(distillation_loss(s, t, y, temperature=3, alpha=0.7)) == pytest.approx(
        float(expected)
    )
    assert float(distillation_loss(t, t, y, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)


def test_the_teacher_stays_frozen_and_in_eval_mode(tiny_loaders):
    seed_everything(0)
    teacher = SmallResNet(num_classes=10, width=8)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}  # BatchNorm buffers too
    pair = Distillation(FastNet(), teacher)
    fit(pair, tiny_loaders[0], tiny_loaders[1], epochs=1, loss_fn=pair.loss, device="cpu",
        optimizer=torch.optim.Adam(pair.student.parameters(), 1e-3), progress=False)  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_a_student_learns_from_the_teachers_answers_alone():
    """Labels replaced by noise: with alpha=1 only the teacher's probabilities teach."""
    seed_everything(0)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (512, 3, 16, 16), generator=g, dtype=torch.uint8)
    truth = (images[:, 0].float().mean((1, 2)) > images[:, 2].float().mean((1, 2))).long()
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    with torch.no_grad():  # a perfect teacher: red brighter than blue
        teacher[1].weight.zero_()
        teacher[1].weight.view(2, 3, 16, 16)[1, 0] = 50.0 / 256  # confident: logits ~ +-5
        teacher[1].weight.view(2, 3, 16, 16)[1, 2] = -50.0 / 256
        teacher[1].bias.zero_()
    noise = torch.randint(0, 2, (512,), generator=g)
    train = TensorLoader(DecodedImages(images, noise, ["blue", "red"]), 64, shuffle=True, seed=0,
                         mean=(0.5,) * 3, std=(0.25,) * 3)  # fmt: skip
    test = TensorLoader(DecodedImages(images, truth, ["blue", "red"]), 512, mean=(0.5,) * 3,
                        std=(0.25,) * 3)  # fmt: skip
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 2))
    pair = Distillation(student, teacher, temperature=2.0, alpha=1.0)
    fit(pair, train, epochs=5, loss_fn=pair.loss, device="cpu", progress=False,
        optimizer=torch.optim.Adam(student.parameters(), 1e-2))  # fmt: skip
    assert evaluate(student, test).accuracy > 0.9
