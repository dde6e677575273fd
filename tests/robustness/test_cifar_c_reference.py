"""Glass blur, motion blur and frost against CIFAR-10-C's generator (hendrycks/robustness,
``make_cifar_c.py``), each checked with the reference's formulas written here in plain NumPy/SciPy on
fixed images, with the same random draws handed to both sides."""

import importlib.util
import math
import os

import numpy as np
import pytest
from scipy import ndimage

from keras_lottery.robustness import corruptions as C

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _images(shape, seed):
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((3, *shape)), sigma=(0, 1.5, 1.5, 0))
    base = (base - base.min()) / (base.max() - base.min())
    return (base * 235 + 10).astype(np.uint8)


RGB, GRAY = _images((32, 32, 3), 7), _images((28, 28, 1), 8)


class Draws:
    """Stands in for ``numpy.random.Generator``: ``integers`` hands out the given draws in order."""

    def __init__(self, *draws):
        self.queue = [np.asarray(d) for d in draws]

    def integers(self, low, high, size=None):
        value = self.queue.pop(0)
        assert value.shape == (() if size is None else tuple(np.atleast_1d(size))), (value.shape, size)
        assert value.min() >= low and value.max() < high, (low, high)
        return value if size is not None else int(value)


def _skimage_gaussian(image, sigma):
    """scikit-image's ``gaussian(image, sigma, multichannel=True)`` of one (H, W, C) image."""
    return ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)


def _as_uint8(x):
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


# -- glass blur ------------------------------------------------------------------------------------
def _reference_shuffle(image, shifts, delta):
    """The reference's loop on one (H, W, C) uint8 image, its statement kept: a tuple assignment of views."""
    x = image.copy()
    h, w = x.shape[:2]
    for row in range(h - delta, delta, -1):
        for col in range(w - delta, delta, -1):
            dx, dy = shifts[row - delta - 1, col - delta - 1]
            row2, col2 = row + dy, col + dx
            x[row, col], x[row2, col2] = x[row2, col2], x[row, col]
    return x


def test_the_reference_statement_copies_and_does_not_swap():
    x = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    x[1, 1], x[0, 0] = x[0, 0], x[1, 1]
    np.testing.assert_array_equal(x[1, 1], x[0, 0])  # a swap would have exchanged them
    np.testing.assert_array_equal(x[0, 0], [0, 1, 2])


@pytest.mark.parametrize("delta", [1, 2])
def test_glass_shuffle_matches_the_reference_loop(delta):
    rng = np.random.default_rng(delta)
    for images in (RGB, GRAY):
        n, h, w = images.shape[:3]
        shifts = rng.integers(-delta, delta, size=(n, h - 2 * delta, w - 2 * delta, 2))
        got = C.glass_shuffle(images.copy(), shifts, delta)
        for i in range(n):
            np.testing.assert_array_equal(got[i], _reference_shuffle(images[i], shifts[i], delta))


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_glass_blur_matches_the_reference(severity):
    sigma, delta, passes = C._C["glass_blur"][severity - 1]
    for images in (RGB, GRAY):
        n, h, w = images.shape[:3]
        draws = np.random.default_rng(severity).integers(-delta, delta, size=(passes, n, h - 2, w - 2, 2))
        got = _as_uint8(C._glass_blur(images.astype(np.float32) / 255, (sigma, delta, passes), Draws(*draws)))
        for i in range(n):
            x = np.uint8(_skimage_gaussian(images[i] / 255.0, sigma) * 255)
            for p in range(passes):
                x = _reference_shuffle(x, draws[p, i], delta)
            expected = _as_uint8(_skimage_gaussian(x / 255.0, sigma))
            difference = np.abs(got[i].astype(int) - expected)
            assert difference.max() <= 1 and (difference > 0).mean() < 0.01, (severity, difference.max())


# -- motion blur -----------------------------------------------------------------------------------
def _reference_motion(image, radius, sigma, angle):
    """ImageMagick's MotionBlurImage on one (H, W, C) image, pixel by pixel: taps
    (x + ceil(i cos a - 0.5), y + ceil(i sin a - 0.5)), half-Gaussian weights, edge pixels repeated."""
    h, w = image.shape[:2]
    width = 2 * math.ceil(radius) + 1
    kernel = [math.exp(-i * i / (2 * sigma * sigma)) for i in range(width)]
    kernel = [k / sum(kernel) for k in kernel]
    a = math.radians(angle)
    taps = [(math.ceil(i * math.cos(a) - 0.5), math.ceil(i * math.sin(a) - 0.5)) for i in range(width)]
    out = np.zeros(image.shape)
    for y in range(h):
        for x in range(w):
            for k, (dx, dy) in zip(kernel, taps):
                out[y, x] += k * image[min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)]
    return out


@pytest.mark.parametrize("radius,sigma", [(6, 1.5), (9, 2.5), (14, 12)])
def test_motion_blur_matches_imagemagick(radius, sigma):
    angles = [-44.0, -30.0, 0.0, 17.5, 45.0, -100.0, -135.0]
    x = np.concatenate([RGB, RGB, RGB])[:len(angles)].astype(np.float32) / 255
    got = C._motion_blur(x, radius, sigma, angles)
    for i, angle in enumerate(angles):
        np.testing.assert_allclose(got[i], _reference_motion(x[i], radius, sigma, angle), atol=1e-5)


def test_motion_blur_direction_and_rounding():
    dot = np.zeros((2, 15, 15, 1), np.float32)
    dot[:, 7, 7] = 1.0
    out = C._motion_blur(dot, 3, 10.0, [0.0, 90.0])[..., 0]
    # a pixel reads the pixels at +i (cos a, sin a): at 0 degrees the dot streaks to its left, at 90 upwards
    assert out[0, 7, 4] > 0 and out[0, 7, 10] == 0 and out[0, 6, 7] == 0
    assert out[1, 4, 7] > 0 and out[1, 10, 7] == 0 and out[1, 7, 6] == 0
    # at 30 degrees, tap 1 is (cos, sin) = (0.87, 0.5): rounded to (1, 0), where truncation would give (0, 0)
    np.testing.assert_array_equal(np.stack(C.motion_offsets(3, 30.0)), [[0, 1, 2], [0, 0, 1]])


# -- frost -----------------------------------------------------------------------------------------
def _make_frost_textures():
    spec = importlib.util.spec_from_file_location("make_frost_textures",
                                                  os.path.join(ROOT, "scripts", "make_frost_textures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _opencv_linear_resize(image, factor):
    """OpenCV's ``resize(fx=fy=factor)``, default linear interpolation: output size round(size * factor),
    output pixel d at input coordinate (d + 0.5) / factor - 0.5, bilinear, coordinates clamped."""
    out = image.astype(np.float64)
    for axis in (0, 1):
        size = image.shape[axis]
        where = (np.arange(int(round(size * factor))) + 0.5) / factor - 0.5
        low = np.floor(where).astype(int)
        frac = where - low
        frac = np.where(low < 0, 0.0, np.where(low >= size - 1, 0.0, frac))
        low = np.clip(low, 0, size - 1)
        shape = [1] * out.ndim
        shape[axis] = -1
        frac = frac.reshape(shape)
        out = np.take(out, low, axis=axis) * (1 - frac) + np.take(out, np.minimum(low + 1, size - 1), axis=axis) * frac
    return np.rint(out).astype(np.uint8)


def test_frost_shrink_is_opencvs_linear_resize():
    shrink = _make_frost_textures().shrink
    rng = np.random.default_rng(0)
    for shape in ((900, 600, 3), (315, 560, 3), (350, 527, 3), (33, 47, 3), (24, 21, 3)):
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        np.testing.assert_array_equal(shrink(image), _opencv_linear_resize(image, 0.2), err_msg=str(shape))
    with pytest.raises(ValueError, match="at least 3x3"):
        shrink(np.zeros((2, 9, 3)))


# Pixels of the original photographs (RGB, hendrycks/robustness ImageNet-C/create_c/) at (5 i + 2, 5 j + 2):
# decimation stores them unchanged at (i, j); a smoothing shrink would not.
ORIGINAL_PIXELS = {
    "frost1": {(0, 0): (113, 168, 177), (3, 7): (141, 184, 190), (10, 20): (94, 158, 171), (19, 4): (129, 170, 174)},
    "frost5": {(0, 0): (152, 162, 171), (3, 7): (172, 182, 191), (10, 20): (166, 176, 186), (19, 4): (131, 141, 151)},
}


def test_committed_frost_textures_are_decimated_photographs():
    with np.load(os.path.join(ROOT, "keras_lottery", "robustness", "frost_textures.npz")) as stored:
        shapes = {key: stored[key].shape for key in stored}
        for key, pixels in ORIGINAL_PIXELS.items():
            for (i, j), rgb in pixels.items():
                np.testing.assert_array_equal(stored[key][i, j], rgb, err_msg=f"{key} at {(i, j)}")
    # round(size / 5) of the photographs: 900x600, 560x315 (twice), 527x350, 660x495
    assert shapes == {"frost1": (120, 180, 3), "frost2": (63, 112, 3), "frost3": (63, 112, 3),
                      "frost4": (70, 105, 3), "frost5": (99, 132, 3)}


@pytest.mark.parametrize("severity", [1, 4])
def test_frost_matches_the_reference(severity):
    weight, frost_weight = C._C["frost"][severity - 1]
    with np.load(C._FROST) as stored:
        textures = [stored[f"frost{i}"] for i in range(1, 6)]
    for images in (RGB, GRAY):
        n, h = images.shape[:2]
        choices = np.array([0, 4, 2])[:n]
        corners = [(np.int64(5 + i), np.int64(11 * i)) for i in range(n)]
        draws = [choices] + [value for corner in corners for value in corner]
        got = _as_uint8(C._frost(images.astype(np.float32) / 255, (weight, frost_weight), Draws(*draws)))
        for i in range(n):
            (top, left), texture = corners[i], textures[choices[i]].astype(np.float64)
            crop = texture[top:top + h, left:left + h]
            if images.shape[-1] == 1:  # grayscale images get the texture's luma (ITU-R 601)
                crop = (crop @ [0.299, 0.587, 0.114])[..., None]
            expected = np.clip(weight * images[i] + frost_weight * crop, 0, 255).astype(np.uint8)
            assert np.abs(got[i].astype(int) - expected).max() <= 1, (severity, i)
