import torch

from deep_emotion.data.augment import augment_batch


def faces(batch=8, seed=0):
    return torch.rand(batch, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def augment(x, seed=0, **kwargs):
    options = dict(max_rotation=0.0, max_scale=0.0, max_shift=0.0, flip=False) | kwargs
    return augment_batch(x, torch.Generator().manual_seed(seed), **options)


def high_frequency_energy(x):
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def test_no_augmentation_leaves_faces_unchanged():
    x = faces()
    torch.testing.assert_close(augment(x), x, atol=1e-5, rtol=0)


def test_same_generator_seed_gives_the_same_batch():
    x = faces()
    options = dict(max_rotation=10.0, max_scale=0.1, max_shift=0.1, flip=True, erase_prob=0.5, sharpness=1.5)
    assert torch.equal(augment(x, 3, **options), augment(x, 3, **options))
    assert not torch.equal(augment(x, 3, **options), augment(x, 4, **options))


def test_sharpening_adds_detail_and_keeps_brightness():
    x = faces()
    sharpened = augment(x, sharpness=1.5)
    assert high_frequency_energy(sharpened) > 1.2 * high_frequency_energy(x)
    torch.testing.assert_close(sharpened.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.01, rtol=0)


def test_random_erasing_blanks_a_rectangle_in_every_chosen_face():
    erased = augment(faces() + 1, erase_prob=1.0)  # faces in [1, 2], so only erasing makes zeros
    assert all((face == 0).any() for face in erased)


def test_camera_degradations_stay_in_range_repeat_with_the_seed_and_vanish_at_strength_zero():
    from deep_emotion.data.augment import degrade_batch
    x = faces(64)  # in [0, 1]
    degrade = lambda seed, strength: degrade_batch(x, torch.Generator().manual_seed(seed), strength)  # noqa: E731
    degraded = degrade(0, 1.0)
    assert degraded.min() >= 0 and degraded.max() <= 1 and degraded.shape == x.shape
    assert torch.equal(degraded, degrade(0, 1.0)) and not torch.equal(degraded, degrade(1, 1.0))
    changed = (degraded - x).abs().flatten(1).max(1).values > 1e-3
    assert changed.float().mean() > 0.8  # each of five changes hits half the faces: few escape all five
    torch.testing.assert_close(degrade(0, 0.0), x, atol=1e-5, rtol=0)
