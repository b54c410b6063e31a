"""The fast recipe, its network and its schedule, on the offline stand-in."""

from dataclasses import replace

import pytest
import torch

from cnnlab.data import StandInCIFAR10, class_subset, decode_images
from cnnlab.models import FastNet, count_parameters
from cnnlab.recipes import FastRecipe, cifar10_fast
from cnnlab.schedules import scale_lr, warmup_linear_decay


def test_fast_recipe_learns_the_standin_and_reports_time_to_targets():
    train = decode_images(StandInCIFAR10(size=1024))
    test = decode_images(StandInCIFAR10(size=256, train=False))
    result = cifar10_fast(train, test, epochs=3, batch_size=64, device="cpu",
                          targets=(0.3, 0.99), progress=False)  # fmt: skip
    assert len(result.history) == 3 and result.device == "cpu" and len(result.accuracy) == 3
    assert result.test_accuracy > 0.4  # chance is 0.1; the final evaluation adds TTA
    assert result.seconds > sum(result.history.seconds)  # the TTA evaluation is counted
    assert 0 < result.time_to[0.3] <= result.seconds and result.time_to[0.99] is None
    assert "30% after" in str(result) and "99% not reached" in str(result)
    assert len(result.curve) == 4 and result.curve[-1] == (result.seconds, result.test_accuracy)
    assert [a for _, a in result.curve[:-1]] == result.accuracy  # the points time_to reads
    assert result.recipe == FastRecipe(epochs=3, batch_size=64)


def test_fast_recipe_sizes_its_head_to_the_classes_of_the_data():
    three = class_subset(StandInCIFAR10(size=300), ["ring", "disk", "checker"])
    data = decode_images(three)
    result = cifar10_fast(data, data, epochs=1, batch_size=64, device="cpu", progress=False)
    assert result.model.head[-1].out_features == 3


def test_fast_recipe_is_repeatable_on_cpu():
    train = decode_images(StandInCIFAR10(size=256))
    test = decode_images(StandInCIFAR10(size=64, train=False))
    runs = [cifar10_fast(train, test, epochs=1, batch_size=64, device="cpu", progress=False)
            for _ in range(2)]  # fmt: skip
    assert runs[0].history.train_loss == runs[1].history.train_loss


def test_progressive_resizing_shrinks_the_first_epochs_only():
    train = decode_images(StandInCIFAR10(size=128))
    test = decode_images(StandInCIFAR10(size=32, train=False))
    sizes = []
    original = FastNet.forward

    def spy(self, x):
        sizes.append(x.shape[-1]) if self.training else None
        return original(self, x)

    FastNet.forward = spy
    try:
        cifar10_fast(train, test, epochs=3, low_res_epochs=2, low_res=16, batch_size=64,
                     device="cpu", progress=False)  # fmt: skip
    finally:
        FastNet.forward = original
    assert sizes == [16, 16, 16, 16, 32, 32]  # 2 batches per epoch


def test_the_whitening_stem_decorrelates_patches():
    from cnnlab.models import whiten_

    images = torch.randn(200, 3, 16, 16) @ torch.eye(16) + torch.randn(200, 3, 1, 1)
    stem = torch.nn.Conv2d(3, 24, 2)
    whiten_(stem, images)
    out = (stem(images) - stem.bias.view(1, -1, 1, 1))[:, :12].permute(1, 0, 2, 3).flatten(1)
    covariance = out @ out.T / out.shape[1]
    assert torch.allclose(covariance, torch.eye(12), atol=0.05)  # white: identity covariance
    with pytest.raises(ValueError, match="needs 2 \\* 3 \\* 2 \\* 2 = 24 filters"):
        whiten_(torch.nn.Conv2d(3, 16, 2), images)


def test_the_recipe_whitens_freezes_and_averages():
    from cnnlab.callbacks import Lookahead

    train = decode_images(StandInCIFAR10(size=256))
    seen = []
    original = Lookahead.on_step_end

    def spy(self, state):
        seen.append(state.step)
        original(self, state)

    Lookahead.on_step_end = spy
    try:
        result = cifar10_fast(
            train,
            train,
            epochs=2,
            batch_size=64,
            whiten_bias_epochs=1,
            device="cpu",
            progress=False,
        )
    finally:
        Lookahead.on_step_end = original
    stem = result.model.stem[0]
    assert not stem.weight.requires_grad and not stem.bias.requires_grad  # bias frozen after 1
    assert seen == list(range(1, 9))
    assert all(not m.weight.requires_grad for m in result.model.modules()
               if isinstance(m, torch.nn.BatchNorm2d))  # fmt: skip


def test_decoupled_hyper_parameters_keep_the_step_when_the_batch_changes():
    small, large = FastRecipe(batch_size=256), FastRecipe(batch_size=1024)
    lr_s, wd_s, *_ = small.sgd_settings()
    lr_l, wd_l, *_ = large.sgd_settings()
    assert lr_l == pytest.approx(4 * lr_s)  # a 4x larger batch, a 4x larger mean-loss step
    assert lr_l * wd_l == pytest.approx(4 * lr_s * wd_s)  # decay per step grows alike


def test_alternating_flips_show_each_image_both_ways_in_two_epochs():
    from cnnlab.data import DecodedImages, TensorLoader

    ramp = torch.arange(32, dtype=torch.uint8).repeat(8, 3, 32, 1)  # left to right ramps
    data = DecodedImages(ramp, torch.arange(8), [str(i) for i in range(8)])
    loader = TensorLoader(data, batch_size=8, augment=True, padding=0, flip="alternate", seed=0)
    first, second = (next(iter(loader))[0] for _ in range(2))
    flipped = lambda x: x[:, 0, 0, 0] > x[:, 0, 0, -1]  # noqa: E731
    assert torch.equal(flipped(first), ~flipped(second))


def test_flip_tta_averages_each_image_with_its_left_right_mirror():
    """A mirror image, not an upside-down one (the old test accepted either)."""
    from cnnlab.engine import tta_logits

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).eval()
    x = torch.rand(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    mirrored = (net(x) + net(x.flip(-1))) / 2
    upside_down = (net(x) + net(x.flip(-2))) / 2
    got = tta_logits(net, x, flip=True)
    assert torch.allclose(got, mirrored, atol=1e-6) and not torch.allclose(got, upside_down)


def test_translation_tta_averages_shifted_views():
    from cnnlab.engine import tta_logits

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).eval()
    x = torch.rand(2, 3, 8, 8)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., :8, :8], padded[..., 2:, 2:]
    expected = 0.5 * net(x) + 0.25 * (net(up_left) + net(down_right))
    assert torch.allclose(tta_logits(net, x, flip=False, translate=1), expected, atol=1e-6)


def test_fastnet_is_smaller_than_simplecnn_in_parameters_and_takes_any_size():
    model = FastNet()
    assert count_parameters(model).total < 300_000
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 10)  # global pooling head


def test_schedule_rises_then_falls_to_zero():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.4)
    sched = warmup_linear_decay(opt, total_steps=100, warmup_fraction=0.1)
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = rates.index(max(rates))
    assert peak == 10 and max(rates) == pytest.approx(0.4)
    assert rates[:peak] == sorted(rates[:peak]) and rates[peak:] == sorted(rates[peak:])[::-1]
    assert opt.param_groups[0]["lr"] == 0.0 and scale_lr(0.1, 256, 128) == 0.2


@pytest.mark.parametrize(("steps", "fraction"), [(0, 0.1), (10, 1.0), (10, -0.1)])
def test_schedule_refuses_impossible_settings(steps, fraction):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="must be"):
        warmup_linear_decay(opt, steps, fraction)


@pytest.mark.parametrize(("steps", "fraction"), [(1, 0.5), (2, 0.9), (3, 0.99), (1, 0.0)])
def test_schedule_survives_a_warm_up_that_rounds_to_every_step(steps, fraction):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.4)
    sched = warmup_linear_decay(opt, steps, fraction)
    rates = []
    for _ in range(steps + 2):  # a step or two past the end, as a resumed run may take
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert all(0.0 <= r <= 0.4 for r in rates) and rates[-1] == 0.0


def test_the_whitening_images_come_from_every_class_of_a_folder_sorted_by_class(monkeypatch):
    """An ImageFolder copy of CIFAR-10 lists its images class by class: the first 5,000
    would be the first classes only. The recipe draws them at random, with its seed."""
    import cnnlab.recipes as recipes
    from cnnlab.data import DecodedImages, TensorLoader
    from cnnlab.recipes import FastRecipe, make_fast_model

    labels = torch.arange(10).repeat_interleave(1000)  # sorted, as ImageFolder lists them
    images = (labels * 20).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    loader = TensorLoader(DecodedImages(images, labels, [str(c) for c in range(10)]), 64)
    seen = []
    monkeypatch.setattr(recipes, "whiten_", lambda conv, x: seen.append(x))
    make_fast_model(FastRecipe(widths=(8, 8, 8)), loader, 10)
    classes = (seen[0][:, 0, 0, 0] * loader.std[0, 0, 0] + loader.mean[0, 0, 0]) * 255 / 20
    assert len(seen[0]) == 5000 and classes.round().unique().numel() == 10


@pytest.mark.parametrize("tier", ["fast", "accurate", "thorough"])
def test_each_tier_resumes_exactly_after_an_interruption(tier, tmp_path):
    """The tiers as learners run them: ``cifar10_fast(recipe=tier, checkpoint=...)``,
    Ctrl-C after the first epoch, the same call again in a new session. The resumed run
    ends as the uninterrupted one: per-epoch accuracies, final TTA accuracy, History and
    weights, with the alternating flips, the whitening bias freeze, Lookahead and (the
    larger tiers) the 24-px epochs across the break. Narrow widths keep it to seconds;
    nothing in a resume depends on them."""
    from cnnlab.callbacks import LambdaCallback
    from cnnlab.recipes import TIERS

    assert list(TIERS) == ["fast", "accurate", "thorough"]  # the test covers every tier
    train = decode_images(StandInCIFAR10(size=256))
    test = decode_images(StandInCIFAR10(size=128, train=False))
    options = {"epochs": 3, "batch_size": 64, "widths": (8, 16, 16), "device": "cpu",
               "progress": False}  # fmt: skip

    def interrupt(state):
        if state.epoch == 1:
            raise KeyboardInterrupt

    straight = cifar10_fast(train, test, tier, checkpoint=tmp_path / "straight.pt", **options)
    with pytest.raises(KeyboardInterrupt):
        cifar10_fast(train, test, tier, checkpoint=tmp_path / "run.pt",
                     callbacks=[LambdaCallback(on_epoch_end=interrupt)], **options)  # fmt: skip
    from cnnlab import seed_everything

    seed_everything(123)  # a new session: the global generators are anywhere
    resumed = cifar10_fast(train, test, tier, checkpoint=tmp_path / "run.pt", **options)
    assert resumed.recipe == replace(TIERS[tier], epochs=3, batch_size=64, widths=(8, 16, 16))
    assert resumed.history.epoch == [1, 2, 3]
    assert resumed.accuracy == straight.accuracy
    assert resumed.test_accuracy == straight.test_accuracy
    assert resumed.history.train_loss == straight.history.train_loss
    for name, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    if tier != "fast":  # epochs 1-2 at 24 px (interrupted between them), then 32 px
        assert resumed.recipe.epochs_at_low_res == 2


def test_a_tier_is_named_and_an_unknown_name_lists_the_tiers():
    from cnnlab.errors import ConfigurationError
    from cnnlab.recipes import TIERS, recipe_tier

    assert recipe_tier("fast") == FastRecipe() and recipe_tier("accurate") is TIERS["accurate"]
    with pytest.raises(ConfigurationError, match="'fast', 'accurate', 'thorough'"):
        cifar10_fast(None, None, "fastest", epochs=1)
    few = decode_images(StandInCIFAR10(size=100))  # fewer images than one batch of 512
    with pytest.raises(ConfigurationError, match="100 training images make no full batch of 512"):
        cifar10_fast(few, few, "accurate", device="cpu", progress=False)
