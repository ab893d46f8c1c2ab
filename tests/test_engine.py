"""engine.py's pieces alone: the loss, the augmentation and the epoch, without main.py's command line."""
from types import SimpleNamespace

import pytest
import torch
from conftest import run_args

from deep_emotion import engine
from deep_emotion import train as main
from deep_emotion.config import CONFIG_KEYS, build_config


def run_epoch(model, images, labels, optimizer, scheduler, epoch, argv, normalization=(0.0, 1.0), teacher=None):
    """One epoch with the loss and augmentation main.py builds for these flags (the deep_emotion recipe)."""
    args = run_args(main, *argv)
    config = build_config({key: getattr(args, key) for key in CONFIG_KEYS}, torch.device("cpu"))
    loss_fn, augment = engine.training_objective(config, normalization, torch.bincount(labels, minlength=7),
                                                 teacher_probabilities=teacher)
    data = SimpleNamespace(images=images, labels=labels, loss_fn=loss_fn, augment=augment, draw=None)
    return engine.train_one_epoch(model, data, optimizer, scheduler, config, epoch=epoch, device=torch.device("cpu"),
                                  show_bar=False)


class PriorOnly(torch.nn.Module):
    """A 'network' that is one bias per class: what it learns is the decision's prior."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(7))

    def forward(self, x):
        return self.bias.expand(len(x), 7)


@pytest.mark.parametrize("tau", [0.0, 1.0])
def test_logit_adjusted_loss_learns_the_balanced_decision(tau):
    # labels with a skewed prior: plain cross-entropy learns log(prior); tau = 1 learns uniform logits
    counts = torch.tensor([400, 20, 200, 800, 300, 100, 180])
    labels = torch.repeat_interleave(torch.arange(7), counts)
    images = torch.zeros(len(labels), 48, 48, dtype=torch.uint8)
    model = PriorOnly()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    argv = ["--batch_size", "500", "--label_smoothing", "0", "--logit_adjust", tau, "--teacher", ""]
    for epoch in range(60):
        run_epoch(model, images, labels, optimizer, scheduler, epoch, argv, (0.5, 0.25))
    learnt = model.bias.detach().softmax(0)
    prior = counts / counts.sum()
    expected = torch.full((7,), 1 / 7) if tau else prior.float()
    assert torch.allclose(learnt, expected, atol=0.01), (learnt, expected)


class Brightness(torch.nn.Module):
    """A network whose logits grow with a face's mean brightness; it keeps the faces it is shown."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor([-3.0, 3.0, 0, 0, 0, 0, 0]))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x.mean(dim=(1, 2, 3))[:, None] * self.weight


BLACK_AND_WHITE = (torch.stack([torch.zeros(48, 48), torch.full((48, 48), 255.0)]).to(torch.uint8),
                   torch.tensor([0, 1]))
NO_AUGMENTATION = ["--rotation", "0", "--scale", "0", "--shift", "0", "--sharpness", "0", "--no_flip"]


@pytest.mark.parametrize("mix", ["--mixup", "--cutmix"])
def test_mixing_blends_faces_labels_and_teacher_targets(mix):
    # two faces, black of class 0 and white of class 1: the loss must be that of the mixed face against
    # the labels and teacher targets mixed by the black face's share of it (1 - its brightness)
    images, labels = BLACK_AND_WHITE
    model = Brightness()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    argv = ["--batch_size", "2", mix, "1.0", "--label_smoothing", "0", "--distill_weight", "0.5", *NO_AUGMENTATION]
    teacher = torch.nn.functional.one_hot(labels, 7).float()  # mixed as the labels are, the loss is unchanged
    blends = 0
    for epoch in range(8):
        loss = run_epoch(model, images, labels, optimizer, scheduler, epoch, argv, teacher=teacher)["loss"]
        faces = model.seen[-1]
        brightness = faces.mean(dim=(1, 2, 3))
        share = 1 - brightness[0].item()  # the black face's share of its own blend (1 when not mixed)
        swapped = labels.flip(0) if share < 1 - 1e-6 else labels
        logits = brightness[:, None] * model.weight.detach()
        expected = (share * torch.nn.functional.cross_entropy(logits, labels)
                    + (1 - share) * torch.nn.functional.cross_entropy(logits, swapped)).item()
        assert loss == pytest.approx(expected, abs=1e-5), epoch
        blends += 0.01 < share < 0.99
        pasted = ((faces == 0) | (faces == 1)).all().item()  # CutMix pastes pixels; mixup blends every one
        assert pasted == (mix == "--cutmix" or not 0 < share < 1), epoch
    assert blends >= 3  # most draws of Beta(1, 1) mix the two faces


def test_sam_steps_with_the_gradient_at_the_perturbed_weights():
    images, labels = BLACK_AND_WHITE
    model = Brightness()
    start = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    run_epoch(model, images, labels, optimizer, scheduler, 0,
              ["--batch_size", "2", "--sam", "0.3", "--label_smoothing", "0", "--teacher", "", *NO_AUGMENTATION])

    def gradient(weight):
        weight = weight.clone().requires_grad_()
        loss = torch.nn.functional.cross_entropy(torch.tensor([[0.0], [1.0]]) * weight, labels)
        return torch.autograd.grad(loss, weight)[0]

    plain = gradient(start)
    sharp = gradient(start + 0.3 * plain / plain.norm())
    assert torch.allclose(model.weight.detach(), start - 0.5 * sharp, atol=1e-6)
    assert not torch.allclose(sharp, plain, atol=1e-3)  # the test tells SAM's step from a plain one


def test_sam_moves_batch_norm_statistics_once_per_step():
    images, labels = BLACK_AND_WHITE
    statistics = {}
    for rho in ("0", "0.05"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.BatchNorm2d(1), torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        run_epoch(model, images, labels, optimizer, scheduler, 0,
                  ["--batch_size", "2", "--sam", rho, "--teacher", "", *NO_AUGMENTATION])
        statistics[rho] = (model[0].running_mean.item(), model[0].running_var.item(), model[0].momentum)
    assert statistics["0.05"] == pytest.approx(statistics["0"])
    assert statistics["0"][0] == pytest.approx(0.05)  # one update: 0.9 * 0 + 0.1 * the batch mean 0.5


def test_each_epoch_draws_its_own_batch_order_and_repeats_it_exactly():
    # faces of distinct brightness, no augmentation: the order the model sees them in is the batch order
    images = torch.arange(0, 240, 10, dtype=torch.uint8)[:, None, None].expand(24, 48, 48).contiguous()
    labels = torch.zeros(24, dtype=torch.int64)
    seen = {}
    for epoch in (0, 1, 1):
        model = Brightness()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        run_epoch(model, images, labels, optimizer, scheduler, epoch, ["--batch_size", "4", *NO_AUGMENTATION])
        order = torch.cat([x.mean(dim=(1, 2, 3)) for x in model.seen])
        assert epoch not in seen or torch.equal(seen[epoch], order)  # a resumed epoch repeats its order
        seen[epoch] = order
    assert not torch.equal(seen[0], seen[1])
    assert engine.epoch_seeds(0, 0, 0)[0] != engine.epoch_seeds(0, 1, 0)[0]
