"""Batch augmentation for training: camera-like degradations, random warps with sharpening and erasing,
and mixup / CutMix. Whole batches at once, as tensors on any device; the random numbers come from the
caller's generator, so a seeded run repeats exactly (engine.make_augment puts them in order).
"""
import math

import torch
import torch.nn.functional as F


def degrade_batch(x, generator, strength=1.0):
    """Random camera-like degradations of faces in [0, 1] (B, C, H, W): contrast, brightness, gamma,
    low resolution and noise, each applied to a random half of the faces; returns the batch in [0, 1].

    Why: FER2013's faces are tightly cropped, evenly exposed 48x48 greyscale; a webcam or a photo's
    face is dimmer or brighter, softer (a small face upscaled) and noisier. strength scales every
    range (1 = contrast x0.6..1.4, brightness +-0.1, gamma 0.67..1.5, resolution 12..40 pixels,
    noise sigma up to 0.05). The random numbers come from `generator`, as in augment_batch.
    """
    batch, size = x.shape[0], x.shape[-1]
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(x.device)  # noqa: E731
    chosen = lambda: (rand(batch) < 0.5).view(-1, 1, 1, 1)  # noqa: E731
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + (rand(batch) * 2 - 1).view(-1, 1, 1, 1) * 0.4 * strength
    brightness = (rand(batch) * 2 - 1).view(-1, 1, 1, 1) * 0.1 * strength
    x = torch.where(chosen(), (x - mean) * contrast + mean + brightness, x).clamp(0, 1)
    gamma = torch.exp((rand(batch) * 2 - 1) * math.log(1.5) * strength).view(-1, 1, 1, 1)
    x = torch.where(chosen(), x.clamp_min(1e-6) ** gamma, x)
    # one resolution per batch keeps this a single resize pair; which faces get it is per face
    low = int(round(size - (size - 12) * min(1.0, strength) * (0.2 + 0.8 * rand(1).item())))
    if low < size:
        small = F.interpolate(x, size=(low, low), mode="bilinear", antialias=True, align_corners=False)
        x = torch.where(chosen(), F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False), x)
    sigma = (rand(batch) * 0.05 * strength).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    x = torch.where(chosen(), x + sigma * noise, x)
    return x.clamp(0, 1)


def augment_batch(x, generator, max_rotation=10.0, max_scale=0.1, max_shift=0.1, flip=True,
                  erase_prob=0.0, sharpness=0.0):
    """Random flips, rotations, scales and shifts, sharpness, then random erasing, for a whole batch at once.

    sharpness: each face is sharpened by a factor drawn from [1, 1 + sharpness]
    (torchvision's adjust_sharpness: 1 = unchanged, 2 = twice the difference from a
    3x3 blur). Why: the random warp resamples, which halves a face's variance
    of the Laplacian, and the development copy's Training faces are already
    smoother than its PublicTest faces, so without it the network only ever
    trains on faces softer than those it is tested on.

    x: float (B, C, H, W) on any device; the random numbers come from `generator`
    (a CPU torch.Generator), so a seeded run repeats exactly on any device.
    """
    batch = x.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(x.device)  # noqa: E731
    angle = (rand(batch) * 2 - 1) * math.radians(max_rotation)
    scale = 1 + (rand(batch) * 2 - 1) * max_scale
    shift = (rand(batch, 2) * 2 - 1) * max_shift * 2  # affine_grid's coordinates span [-1, 1]
    mirror = torch.where(rand(batch) < 0.5, -1.0, 1.0) if flip else torch.ones(batch, device=x.device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1),
                         torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if sharpness > 0:
        channels = x.shape[1]
        kernel = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]], device=x.device).div(13).view(1, 1, 3, 3)
        blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(channels, 1, 3, 3),
                           groups=channels)
        factor = (1 + rand(batch) * sharpness).view(-1, 1, 1, 1)
        x = blurred + factor * (x - blurred)
    if erase_prob > 0:
        # one random rectangle per chosen image (2% to 20% of the area), filled with zeros (the mean)
        h, w = x.shape[-2:]
        area = (0.02 + rand(batch) * 0.18) * h * w
        aspect = torch.exp((rand(batch) * 2 - 1) * math.log(3))
        eh = (area * aspect).sqrt().clamp(max=h)
        ew = (area / aspect).sqrt().clamp(max=w)
        top = rand(batch) * (h - eh)
        left = rand(batch) * (w - ew)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        box = ((rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1))
               & (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1)))
        chosen = (rand(batch) < erase_prob).view(-1, 1, 1)
        x = x.masked_fill((box & chosen).unsqueeze(1), 0.0)
    return x


def mix_batch(x, generator, mixup=0.0, cutmix=0.0):
    """Mixes each face with another of its batch: (mixed x, share, partner), partner None when unmixed.

    share ~ Beta(a, a) is each face's own part of the result; the labels and teacher targets
    of x[partner] make up the rest. mixup > 0 blends whole faces (Zhang et al. 2018);
    cutmix > 0 pastes a rectangle of the partner (Yun et al. 2019), and share becomes the
    area actually left to the face once the rectangle is clipped to the image. The Beta
    draw uses the global RNG (seeded per epoch by the caller), the partner and the
    rectangle `generator`.
    """
    alpha = mixup or cutmix
    if alpha <= 0:
        return x, 1.0, None
    share = torch.distributions.Beta(alpha, alpha).sample().item()
    partner = torch.randperm(len(x), generator=generator).to(x.device)
    if mixup > 0:
        return share * x + (1 - share) * x[partner], share, partner
    h, w = x.shape[-2:]
    centre_row, centre_col = (torch.rand(2, generator=generator) * torch.tensor([h, w])).tolist()
    half_h, half_w = h * math.sqrt(1 - share) / 2, w * math.sqrt(1 - share) / 2
    top, bottom = max(0, round(centre_row - half_h)), min(h, round(centre_row + half_h))
    left, right = max(0, round(centre_col - half_w)), min(w, round(centre_col + half_w))
    x = x.clone()
    x[..., top:bottom, left:right] = x[partner][..., top:bottom, left:right]
    return x, 1 - (bottom - top) * (right - left) / (h * w), partner
