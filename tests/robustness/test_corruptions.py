"""The common corruptions: shapes, determinism, growing with severity, closed forms checked against
independent references (matplotlib's HSV, SciPy's zoom), and the errors."""

import numpy as np
import pytest
from matplotlib import colors
from scipy import ndimage

from keras_lottery.robustness import corruptions as C


def _images(shape, seed=0):
    """Smooth images with structure (blurs and zooms change them), uint8."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.random((4, *shape)), sigma=(0, 2, 2, 0))
    base = (base - base.min()) / (base.max() - base.min())
    return (base * 230 + 10).astype(np.uint8)


GRAY, RGB = _images((28, 28, 1)), _images((32, 32, 3), seed=1)
# Corruptions whose strength grows with severity on every image (CIFAR-10-C's glass blur and elastic
# transform do not: their constants trade one effect against another; fog draws a new fractal per severity).
MONOTONE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "gaussian_blur",
            "zoom_blur", "contrast", "brightness", "pixelate")


@pytest.mark.parametrize("images", [GRAY, RGB], ids=["gray28", "rgb32"])
def test_every_corruption_and_severity(images):
    channels = images.shape[-1]
    assert len(C.names(channels)) == (17 if channels == 1 else 18)
    for name in C.names(channels):
        change = []
        for severity in C.SEVERITIES:
            out = C.corrupt(images, name, severity, seed=3)
            assert out.shape == images.shape and out.dtype == np.uint8, name
            change.append(np.abs(out.astype(float) - images).mean())
        assert change[-1] > 0.5, (name, change)
        if name in MONOTONE:
            assert all(b >= a - 0.25 for a, b in zip(change, change[1:])), (name, change)
            assert change[-1] > change[0], (name, change)


def test_fixed_seed_gives_fixed_images():
    for name in ("gaussian_noise", "glass_blur", "snow", "frost", "elastic_transform"):
        first = C.corrupt(GRAY, name, 3, seed=0)
        np.testing.assert_array_equal(first, C.corrupt(GRAY, name, 3, seed=0))
        assert np.any(first != C.corrupt(GRAY, name, 3, seed=1)), name


def test_closed_forms_match_the_hsv_round_trip():
    """Brightness and saturate change HSV value / saturation: compare with matplotlib's conversion."""
    x = RGB.astype(np.float32) / 255
    for name, channel in (("brightness", 2), ("saturate", 1)):
        for severity in (1, 3, 5):
            hsv = colors.rgb_to_hsv(x)
            c = C._C[name][severity - 1]
            hsv[..., channel] = np.clip(hsv[..., channel] * c[0] + c[1] if name == "saturate"
                                        else hsv[..., channel] + c, 0, 1)
            expected = np.clip(colors.hsv_to_rgb(hsv), 0, 1)
            got = C.corrupt(RGB, name, severity).astype(np.float32) / 255
            assert np.abs(got - expected).max() <= 1.5 / 255, (name, severity)
    gray = GRAY.astype(np.float32) / 255  # brightness of a gray image is a shift
    np.testing.assert_allclose(C.corrupt(GRAY, "brightness", 2) / 255, np.clip(gray + 0.1, 0, 1), atol=1.5 / 255)


def test_contrast_keeps_the_mean_and_zoom_matches_scipy():
    out = C.corrupt(GRAY, "contrast", 5).astype(float)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), GRAY.astype(float).mean(axis=(1, 2)), atol=1.0)
    x = GRAY.astype(np.float32)
    for factor in (1.03, 1.17, 1.25):
        np.testing.assert_allclose(C._zoom_axis(C._zoom_axis(x, factor, 1), factor, 2),
                                   ndimage.zoom(x, (1, factor, factor, 1), order=1), atol=1e-3)


def test_motion_blur_keeps_a_flat_image_flat():
    flat = np.full((3, 28, 28, 1), 0.5, np.float32)
    np.testing.assert_allclose(C._motion_blur(flat, 9, 2.5, [-40.0, 0.0, 30.0]), flat, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="Unknown corruption 'blizzard'"):
        C.corrupt(GRAY, "blizzard", 1)
    with pytest.raises(ValueError, match="spatter is not implemented"):
        C.check("spatter")
    for severity in (0, 6):
        with pytest.raises(ValueError, match=f"severity must be 1..5, got {severity}"):
            C.corrupt(GRAY, "fog", severity)
    with pytest.raises(ValueError, match="needs RGB images"):
        C.corrupt(GRAY, "saturate", 1)
    with pytest.raises(ValueError, match="shape \\(N, H, W, 1 or 3\\)"):
        C.corrupt(GRAY[..., 0], "fog", 1)


def test_batched_elastic_transform_equals_the_per_image_scipy_warp():
    """The elastic transform, batched, against SciPy's affine_transform and map_coordinates image by image
    with the same random numbers (warp, then the x and y fields of each image in turn)."""
    for images in (GRAY, RGB):
        x = images.astype(np.float32) / 255
        n, h, w, channels = x.shape
        for c in C._C["elastic_transform"][1::2]:
            rng = np.random.default_rng(4)
            amplitude, smooth, jitter = (v * h for v in c)
            centre, third = np.array([w, h], np.float64) // 2, min(h, w) // 3
            points = np.array([centre + third, [centre[0] + third, centre[1] - third], centre - third])
            rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            for i in range(n):
                target = points + rng.uniform(-jitter, jitter, size=(3, 2))
                forward = np.linalg.solve(np.hstack([points, np.ones((3, 1))]), target).T
                inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2][::-1, [1, 0, 2]]
                dx, dy = (ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), smooth, mode="reflect", truncate=3)
                          * amplitude for _ in range(2))
                for k in range(channels):
                    warped = ndimage.affine_transform(x[i, :, :, k], inverse[:, :2], offset=inverse[:, 2], order=1,
                                                      mode="mirror")
                    expected = ndimage.map_coordinates(warped, [rows + dy, cols + dx], order=1, mode="reflect")
                    got = C._elastic_transform(x, c, np.random.default_rng(4))[i, :, :, k]
                    np.testing.assert_allclose(got, expected, atol=1e-6)
