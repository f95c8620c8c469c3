"""Buckets against a second, straightforward implementation written here from the issue's text
(not from workbench/planning/buckets.py), over many random sizes and parameters; plus the named rules."""
from __future__ import annotations

import math
import random

import pytest

from workbench.planning.buckets import Bucketer, BucketError, BucketSpec, cover_size, crop_box, make_bucket_resolutions

# ---------------------------------------------------------------- the text, literally

def spec_buckets(W, H, min_reso, max_reso, d):
    """A = W·H; the square (s, s), s = floor(√A / d)·d; for w from min to max in steps of d:
    h = min(max, floor((A // w) / d)·d); if h ≥ min add (w, h) and (h, w). Deduplicate, sort."""
    A = W * H
    s = math.floor(math.sqrt(A) / d) * d
    found = [(s, s)]
    w = min_reso
    while w <= max_reso:
        h = min(max_reso, math.floor((A // w) / d) * d)
        if h >= min_reso:
            found += [(w, h), (h, w)]
        w += d
    return sorted(set(found))


def spec_assign(w, h, buckets):
    """Exact size keeps its bucket; else smallest |bucket aspect − image aspect|, ties to the
    first in sorted order; scale to cover, rounded half up."""
    if (w, h) in buckets:
        bucket = (w, h)
    else:
        best = None
        for b in buckets:                       # strict < keeps the first of equal errors
            err = abs(b[0] / b[1] - w / h)
            if best is None or err < best[0]:
                best = (err, b)
        bucket = best[1]
    s = bucket[1] / h if w / h > bucket[0] / bucket[1] else bucket[0] / w
    return bucket, (int(w * s + 0.5), int(h * s + 0.5))


def spec_no_upscale(w, h, W, H, d):
    A = W * H
    if w * h <= A:
        resized = (w, h)
    else:
        r = w / h
        rw = math.sqrt(A * r)
        rh = A / rw

        def round_to_steps(x):
            x = int(x + 0.5)
            return x - x % d
        bw = round_to_steps(rw)
        bh = round_to_steps(rh)
        try:
            r1 = bw / round_to_steps(bw / r)
            r2 = round_to_steps(bh * r) / bh
        except ZeroDivisionError:
            return None                         # sd-scripts crashes here
        resized = (bw, int(bw / r + 0.5)) if abs(r1 - r) < abs(r2 - r) else (int(bh * r + 0.5), bh)
    bucket = (resized[0] - resized[0] % d, resized[1] - resized[1] % d)
    return None if 0 in bucket else (bucket, resized)


def random_params(rng):
    d = rng.choice([32, 64, 64, 128])
    W = rng.randrange(d // 8, 160) * 8                   # at least one step: validation refuses less
    H = rng.choice([W, rng.randrange(d // 8, 160) * 8])
    min_reso = rng.choice([64, 128, 256, 320, 384])
    max_reso = max(min_reso, max(W, H), rng.choice([512, 1024, 1536, 2048]))
    return (W, H), min_reso, max_reso, d


# ---------------------------------------------------------------- property tests

def test_bucket_list_and_assignment_match_the_spec_over_random_cases():
    rng = random.Random(1234)
    for _ in range(300):
        resolution, min_reso, max_reso, d = random_params(rng)
        buckets = spec_buckets(*resolution, min_reso, max_reso, d)
        assert make_bucket_resolutions(resolution, min_reso, max_reso, d) == buckets
        bucketer = Bucketer(BucketSpec(resolution, True, min_reso, max_reso, d, False))
        sizes = [(rng.randrange(16, 4000), rng.randrange(16, 4000)) for _ in range(60)]
        sizes += [rng.choice(buckets) for _ in range(5)]              # exact bucket sizes
        sizes += [(b[0] * 3, b[1] * 3) for b in rng.sample(buckets, min(3, len(buckets)))]  # bucket aspects
        for w, h in sizes:
            a = bucketer.assign(w, h)
            assert (a.bucket, a.resized) == spec_assign(w, h, buckets), (resolution, min_reso, max_reso, d, w, h)


def test_no_upscale_matches_the_spec_over_random_cases():
    rng = random.Random(99)
    for _ in range(300):
        (W, H), _, _, d = random_params(rng)
        bucketer = Bucketer(BucketSpec((W, H), True, 256, 2048, d, True))
        for _ in range(40):
            w, h = rng.randrange(8, 5000), rng.randrange(8, 5000)
            expected = spec_no_upscale(w, h, W, H, d)
            if expected is None:                  # an empty bucket or sd-scripts' division by zero
                with pytest.raises(BucketError):
                    bucketer.assign(w, h)
                continue
            a = bucketer.assign(w, h)
            assert (a.bucket, a.resized) == expected, (W, H, d, w, h)


# ---------------------------------------------------------------- named rules

def test_sd15_bucket_list_is_the_familiar_one():
    buckets = make_bucket_resolutions((512, 512), 256, 1024, 64)
    assert (512, 512) in buckets and (768, 320) in buckets and (320, 768) in buckets
    assert (256, 1024) in buckets and (1024, 256) in buckets
    assert buckets == sorted(buckets) and len(set(buckets)) == len(buckets)
    assert all(w * h <= 512 * 512 for w, h in buckets)


def test_exact_size_keeps_its_bucket_even_when_another_aspect_is_as_close():
    bucketer = Bucketer(BucketSpec((512, 512), True, 256, 1024, 64))
    a = bucketer.assign(448, 576)
    assert a.bucket == (448, 576) and a.resized == (448, 576) and a.crop == (0, 0)


def test_aspect_tie_goes_to_the_first_bucket_in_sorted_order():
    # buckets (256, 512) 0.5, (512, 256) 2.0 and the square (512, 512) 1.0; a 300×400 image
    # (0.75) is exactly 0.25 from both 0.5 and 1.0: the tie goes to (256, 512), first in sorted order
    bucketer = Bucketer(BucketSpec((512, 512), True, 256, 512, 256))
    assert bucketer.resos == [(256, 512), (512, 256), (512, 512)]
    assert abs(0.5 - 0.75) == abs(1.0 - 0.75)
    assert bucketer.assign(300, 400).bucket == (256, 512)
    assert spec_assign(300, 400, bucketer.resos)[0] == (256, 512)


def test_cover_size_scales_the_short_way_and_rounds_half_up():
    assert cover_size(1000, 500, (512, 512)) == (1024, 512)
    assert cover_size(500, 1000, (512, 512)) == (512, 1024)
    assert cover_size(3, 2, (5, 3)) == (5, 3)            # 3·(5/3)=5.0, 2·(5/3)=3.33 → 3
    assert crop_box((1024, 512), (512, 512)) == (256, 0, 768, 512)


def test_enable_bucket_false_is_one_bucket_the_resolution():
    bucketer = Bucketer(BucketSpec((512, 768), False, 256, 1024, 64))
    for size in [(300, 300), (2000, 1000), (512, 768)]:
        a = bucketer.assign(*size)
        assert a.bucket == (512, 768)
        assert a.resized[0] >= 512 and a.resized[1] >= 768
    assert bucketer.assign(1024, 1536).resized == (512, 768)


def test_no_upscale_small_image_keeps_its_size_floored_to_steps():
    bucketer = Bucketer(BucketSpec((512, 512), True, 256, 1024, 64, no_upscale=True))
    a = bucketer.assign(300, 200)
    assert a.resized == (300, 200) and a.bucket == (256, 192)


def test_no_upscale_refuses_what_sd_scripts_would_crash_on():
    bucketer = Bucketer(BucketSpec((512, 512), True, 256, 1024, 64, no_upscale=True))
    with pytest.raises(BucketError, match="too narrow"):
        bucketer.assign(20000, 100)          # the short side rounds to 0 steps: a division by zero
    with pytest.raises(BucketError, match="below bucket_reso_steps"):
        bucketer.assign(40, 40)              # small enough to keep, but 40 px floors to an empty bucket


def test_assignment_is_memoised_per_size():
    bucketer = Bucketer(BucketSpec((512, 512), True, 256, 1024, 64))
    assert bucketer.assign(777, 333) is bucketer.assign(777, 333)


def test_min_and_max_bucket_reso_are_rounded_to_the_step_as_sd_scripts_does(tmp_path):
    from tests.conftest import make_image
    from workbench.config.schema import TrainConfig
    from workbench.planning.buckets import bucket_range
    from workbench.planning.plan import make_plan
    assert bucket_range(200, 1000, 64) == (192, 1024)
    assert bucket_range(256, 1024, 64) == (256, 1024)
    assert bucket_range(250, 1030, 64) == (192, 1088)
    make_image(tmp_path / "1_x" / "tall.png", (300, 1500))       # aspect 0.2: wants the narrowest bucket
    cfg = TrainConfig(train_data_dir=str(tmp_path), resolution="512,512", min_bucket_reso=200,
                      max_bucket_reso=1000, max_train_epochs=1)
    (image,) = make_plan(cfg).images
    assert image.bucket == (192, 1024)        # unrounded it would be (200, 1000), not a multiple of 64
