"""The common corruptions of CIFAR-10-C (Hendrycks & Dietterich, 2019), batched, for any small image size.

``corrupt(images, name, severity, seed)`` takes uint8 images ``(N, H, W, C)`` with C = 1 (grayscale)
or 3 (RGB) and returns corrupted uint8 images of the same shape. The constants are CIFAR-10-C's
(``make_cifar_c.py`` of the hendrycks/robustness repository), made for 32x32 images, which fit the
28x28 and 32x32 images this project trains on; ImageNet-C's constants (made for 224x224, and the ones
the ``imagecorruptions`` package uses) would wreck such small images. Lengths that CIFAR-10-C states
in units of the image size (elastic transform) follow the image size; the others are used as they
are. Each corruption is written here in NumPy/SciPy/Pillow, vectorized over the batch, where the
original calls OpenCV, scikit-image or ImageMagick one image at a time:

* the 15 corruptions (``CORRUPTIONS``) and 3 of the 4 extra ones (``EXTRA``: speckle noise,
  Gaussian blur, saturate; saturate only for RGB images). Spatter is left out: its drops need OpenCV's
  Canny edges, distance transform and histogram equalisation.
* glass blur copies each visited pixel's neighbour into it and leaves the neighbour unchanged, as the
  reference's tuple assignment on NumPy views does (:func:`glass_shuffle`); its loop bounds follow the
  image size where the reference's are fixed at 32.
* motion blur (and the snow streaks) are ImageMagick's ``MotionBlurImage``: output (x, y) is the
  half-Gaussian (``sigma``, ``2 * ceil(radius) + 1`` taps) weighted sum of the inputs at
  ``(x + round(i cos a), y + round(i sin a))`` (:func:`motion_offsets`), edges repeated.
* frost blends crops of the first five frost photographs of CIFAR-10-C's generator, stored shrunk to
  a fifth by decimation, which is what OpenCV's linear resize at factor 0.2 computes
  (``frost_textures.npz``; ``scripts/make_frost_textures.py``); converted to gray (ITU-R 601 luma)
  for grayscale images and enlarged by ``size / 32`` for images larger than 32.
* brightness and saturate change HSV value and saturation in closed form (scaling the RGB values),
  which equals scikit-image's HSV round trip.
"""

import io
import os

import numpy as np
from PIL import Image
from scipy import ndimage

CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "saturate")
FAMILIES = {"noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
            "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
            "weather": ("snow", "frost", "fog", "brightness"),
            "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate")}
SEVERITIES = (1, 2, 3, 4, 5)
_RGB_ONLY = ("saturate",)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as OpenCV's RGB2GRAY
_FROST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "frost_textures.npz")

# CIFAR-10-C's constants, one entry per severity 1..5.
_C = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1.0],
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],  # sigma, max shift, passes
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],  # disk radius, alias blur
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],  # radius, sigma
    "zoom_blur": [(1.06,), (1.11,), (1.16,), (1.21,), (1.26,)],  # zooms 1.00, 1.01, ... below this bound
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],  # strength, fractal decay
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],  # image weight, frost weight
    # snow: flake mean, flake spread, zoom, threshold, streak radius, streak sigma, image weight
    "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],  # factor, offset
    "jpeg_compression": [80, 65, 58, 50, 40],  # quality
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],  # size factor
    # elastic: displacement amplitude, displacement smoothness, affine jitter; in units of the image size
    "elastic_transform": [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                          (0.1, 0.03, 0.03)],
}


def names(channels=3, extra=True):
    """The corruptions that apply to images with ``channels`` channels: the 15, then the extra ones."""
    out = list(CORRUPTIONS) + (list(EXTRA) if extra else [])
    return [n for n in out if channels == 3 or n not in _RGB_ONLY]


def family(name):
    """The family (noise, blur, weather, digital) of corruption ``name``."""
    return next(f for f, members in FAMILIES.items() if name in members)


def check(name, severity=None, channels=None):
    """Raises ValueError for an unknown corruption, a severity outside 1..5, or saturate on grayscale."""
    known = CORRUPTIONS + EXTRA
    if name not in known:
        hint = " (spatter is not implemented: it needs OpenCV)" if name == "spatter" else ""
        raise ValueError(f"Unknown corruption {name!r}{hint}; known: {', '.join(known)}.")
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"Corruption severity must be 1..5, got {severity}.")
    if channels is not None and channels != 3 and name in _RGB_ONLY:
        raise ValueError(f"Corruption {name!r} changes colour saturation: it needs RGB images, these have "
                         f"{channels} channel(s).")


def corrupt(images, name, severity, seed=0):
    """``images`` (uint8, ``(N, H, W, C)``, C = 1 or 3) with corruption ``name`` at ``severity`` (1..5).

    Deterministic in ``seed``. Returns uint8 images of the same shape.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"Corruptions take images of shape (N, H, W, 1 or 3), got {images.shape}.")
    check(name, severity, images.shape[-1])
    x = images.astype(np.float32) / 255.0
    rng = np.random.default_rng([int(seed), (CORRUPTIONS + EXTRA).index(name), int(severity)])
    out = _FUNCTIONS[name](x, _C[name][severity - 1], rng)
    # CIFAR-10-C casts to uint8 (truncation) after clipping to [0, 255]
    return (np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


# -- helpers ---------------------------------------------------------------------------------------
def _gaussian(x, sigma, mode="nearest", truncate=4.0):
    """Spatial Gaussian blur of a batch (N, H, W, C), as scikit-image's ``gaussian`` per image."""
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode=mode, truncate=truncate)


def _gray(x):
    return x[..., :1] if x.shape[-1] == 1 else (x @ _LUMA)[..., None]


def _zoom_axis(x, factor, axis):
    """Linear zoom of one axis by ``factor``, on SciPy's ``ndimage.zoom(order=1)`` grid (ends aligned)."""
    size = x.shape[axis]
    out = int(round(size * factor))
    where = np.arange(out) * ((size - 1) / (out - 1) if out > 1 else 0.0)
    low = np.minimum(np.floor(where).astype(int), size - 1)
    high = np.minimum(low + 1, size - 1)
    shape = [1] * x.ndim
    shape[axis] = out
    frac = (where - low).reshape(shape).astype(x.dtype)
    return np.take(x, low, axis=axis) * (1 - frac) + np.take(x, high, axis=axis) * frac


def _clipped_zoom(x, factor):
    """Zooms the centre of each image (N, H, W, C) by ``factor`` (bilinear) and crops back to H x W."""
    h, w = x.shape[1:3]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    zoomed = _zoom_axis(_zoom_axis(x[:, top:top + ch, left:left + cw], factor, 1), factor, 2)
    th, tw = (zoomed.shape[1] - h) // 2, (zoomed.shape[2] - w) // 2
    return zoomed[:, th:th + h, tw:tw + w]


def motion_offsets(width, angle):
    """ImageMagick's motion-blur taps for one angle (degrees): ``(dx, dy)`` of tap ``i`` in ``0..width-1``,
    ``(ceil(i cos a - 0.5), ceil(i sin a - 0.5))``, i.e. ``i (cos a, sin a)`` rounded to the nearest pixel
    (halves down); x is the column, y the row (downwards)."""
    theta = np.deg2rad(float(angle))
    taps = np.arange(width)
    return (np.ceil(taps * np.cos(theta) - 0.5).astype(int), np.ceil(taps * np.sin(theta) - 0.5).astype(int))


def _motion_blur(x, radius, sigma, angles):
    """ImageMagick's motion blur (``MotionBlurImage``) of each image along its own angle (degrees): the
    output at (row, col) is the weighted sum of the inputs at ``(row + dy_i, col + dx_i)`` for the taps
    of :func:`motion_offsets`, weights a half-Gaussian of ``sigma`` over ``2 * ceil(radius) + 1`` taps,
    edge pixels repeated outside the image (ImageMagick's default virtual pixels)."""
    n, h, w = x.shape[:3]
    width = 2 * int(np.ceil(radius)) + 1
    weights = np.exp(-np.arange(width) ** 2 / (2.0 * sigma ** 2))
    weights /= weights.sum()
    offsets = np.array([motion_offsets(width, angle) for angle in angles]).reshape(n, 2, width)
    index = np.arange(n)[:, None, None]
    out = np.zeros_like(x)
    for i, weight in enumerate(weights):
        dx, dy = offsets[:, 0, i], offsets[:, 1, i]
        rows = np.clip(np.arange(h)[None, :] + dy[:, None], 0, h - 1)
        cols = np.clip(np.arange(w)[None, :] + dx[:, None], 0, w - 1)
        out += weight * x[index, rows[:, :, None], cols[:, None, :]]
    return out


def _plasma(rng, n, size, decay):
    """Diamond-square height maps (n, size, size) in [0, 1], ``size`` a power of two (CIFAR-10-C's fog)."""
    grid = np.zeros((n, size, size))
    step, wibble = size, 100.0

    def noisy_mean(total):
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[:, 0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        grid[:, half:size:step, half:size:step] = noisy_mean(square)
        centres = grid[:, half:size:step, half:size:step]
        corners = grid[:, 0:size:step, 0:size:step]
        grid[:, 0:size:step, half:size:step] = noisy_mean(centres + np.roll(centres, 1, axis=1)
                                                          + corners + np.roll(corners, -1, axis=2))
        grid[:, half:size:step, 0:size:step] = noisy_mean(centres + np.roll(centres, 1, axis=2)
                                                          + corners + np.roll(corners, -1, axis=1))
        step //= 2
        wibble /= decay
    grid -= grid.min(axis=(1, 2), keepdims=True)
    return grid / grid.max(axis=(1, 2), keepdims=True)


def _per_image_pil(x, transform):
    """Applies ``transform(PIL image) -> PIL image`` to each image of the batch."""
    mode = "L" if x.shape[-1] == 1 else "RGB"
    out = np.empty_like(x)
    for i, image in enumerate((x * 255.0).astype(np.uint8)):
        result = transform(Image.fromarray(image[..., 0] if mode == "L" else image, mode=mode))
        out[i] = np.asarray(result, np.float32).reshape(x.shape[1:]) / 255.0
    return out


# -- noise -----------------------------------------------------------------------------------------
def _gaussian_noise(x, c, rng):
    return x + rng.normal(scale=c, size=x.shape)


def _shot_noise(x, c, rng):
    return rng.poisson(x * c) / c


def _impulse_noise(x, c, rng):
    hit = rng.random(x.shape) < c  # salt or pepper, half each, on every value independently
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(np.float32), x)


def _speckle_noise(x, c, rng):
    return x + x * rng.normal(scale=c, size=x.shape)


# -- blur ------------------------------------------------------------------------------------------
def _gaussian_blur(x, c, rng):
    return _gaussian(x, c)


def glass_shuffle(y, shifts, delta):
    """One pass of CIFAR-10-C's local pixel shuffle on uint8 images ``y`` (N, H, W, C), in place.

    The reference visits (row, col) from ``(H - delta, W - delta)`` down to ``(delta + 1, delta + 1)``
    (bottom-right to top-left) and "swaps" each pixel with a neighbour by a tuple assignment on NumPy
    views, which copies the neighbour into (row, col) and leaves the neighbour unchanged: so
    ``y[row, col] = y[row + dy, col + dx]`` at the time of the visit. ``shifts`` holds the ``(dx, dy)``
    of each visited pixel, int ``(N, H - 2 * delta, W - 2 * delta, 2)`` indexed by ``(row - delta - 1,
    col - delta - 1)``, each in ``[-delta, delta)``. With ``delta`` = 1 (every CIFAR-10-C severity) a
    neighbour is never visited before the pixel that reads it, so a pass is one gather.
    """
    n, h, w = y.shape[:3]
    rows, cols = np.arange(delta + 1, h - delta + 1), np.arange(delta + 1, w - delta + 1)
    index = np.arange(n)
    if delta == 1:  # every source (row + dy, col + dx), dy, dx in {-1, 0}, is visited later, if at all
        src_r = rows[None, :, None] + shifts[..., 1]
        src_c = cols[None, None, :] + shifts[..., 0]
        y[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = y[index[:, None, None], src_r, src_c]
        return y
    for i in range(len(rows) - 1, -1, -1):
        for j in range(len(cols) - 1, -1, -1):
            y[index, rows[i], cols[j]] = y[index, rows[i] + shifts[:, i, j, 1], cols[j] + shifts[:, i, j, 0]]
    return y


def _glass_blur(x, c, rng):
    sigma, delta, passes = c
    y = (np.clip(_gaussian(x, sigma), 0, 1) * 255).astype(np.uint8)
    n, h, w = y.shape[:3]
    for _ in range(passes):
        glass_shuffle(y, rng.integers(-delta, delta, size=(n, h - 2 * delta, w - 2 * delta, 2)), delta)
    return _gaussian(y / 255.0, sigma)


def _defocus_blur(x, c, rng):
    radius, alias = c
    span = max(8, int(radius))
    grid = np.arange(-span, span + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias ** 2))  # a 3x3 Gaussian smooths the disk's edge
    taps /= taps.sum()
    kernel = ndimage.correlate(ndimage.correlate1d(disk, taps, axis=0, mode="mirror"), taps[None, :], mode="mirror")
    return ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")


def _motion(x, c, rng):
    return _motion_blur(x, c[0], c[1], rng.uniform(-45, 45, size=len(x)))


def _zoom_blur(x, c, rng):
    factors = np.arange(1, c[0], 0.01)
    out = x.copy()
    for factor in factors:
        out += _clipped_zoom(x, factor)
    return out / (len(factors) + 1)


# -- weather ---------------------------------------------------------------------------------------
def _snow(x, c, rng):
    mean, spread, zoom, threshold, radius, sigma, keep = c
    n, h, w = x.shape[:3]
    flakes = _clipped_zoom(rng.normal(loc=mean, scale=spread, size=(n, h, w, 1)), zoom)
    flakes[flakes < threshold] = 0
    flakes = np.floor(np.clip(flakes, 0, 1) * 255) / 255  # the original passes the layer through an 8-bit PNG
    flakes = _motion_blur(flakes, radius, sigma, rng.uniform(-135, -45, size=n))
    flakes = np.rint(flakes * 255) / 255  # ImageMagick writes the blurred layer as an 8-bit PNG again
    x = keep * x + (1 - keep) * np.maximum(x, _gray(x) * 1.5 + 0.5)
    return x + flakes + np.rot90(flakes, k=2, axes=(1, 2))


def _frost(x, c, rng):
    with np.load(_FROST) as stored:
        textures = [stored[f"frost{i}"].astype(np.float32) for i in range(1, 6)]
    n, h, w, channels = x.shape
    scale = max(h, w) / 32.0
    if scale > 1:  # the textures are sized for 32x32 images
        textures = [ndimage.zoom(t, (scale, scale, 1), order=1) for t in textures]
    if channels == 1:
        textures = [(t @ _LUMA)[..., None] for t in textures]
    out = np.empty_like(x)
    for i, choice in enumerate(rng.integers(0, 5, size=n)):
        texture = textures[choice]
        top, left = rng.integers(0, texture.shape[0] - h), rng.integers(0, texture.shape[1] - w)
        out[i] = c[0] * x[i] + c[1] * texture[top:top + h, left:left + w] / 255.0
    return out


def _fog(x, c, rng):
    n, h, w = x.shape[:3]
    size = 1 << int(np.ceil(np.log2(max(h, w))))
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + c[0] * _plasma(rng, n, size, c[1])[:, :h, :w, None]
    return x * peak / (peak + c[0])


def _brightness(x, c, rng):
    # HSV value is the largest channel; raising it with hue and saturation fixed scales every channel
    value = x.max(axis=-1, keepdims=True)
    raised = np.clip(value + c, 0, 1)
    return np.where(value > 0, x * raised / np.maximum(value, 1e-12), raised)


# -- digital ---------------------------------------------------------------------------------------
def _contrast(x, c, rng):
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * c + means


def _saturate(x, c, rng):
    # RGB = V - (V - RGB) * S' / S with hue and value fixed; gray pixels (S = 0) have hue 0 (red) in HSV
    value, low = x.max(axis=-1, keepdims=True), x.min(axis=-1, keepdims=True)
    sat = np.where(value > 0, (value - low) / np.maximum(value, 1e-12), 0.0)
    new_sat = np.clip(sat * c[0] + c[1], 0, 1)
    coloured = value - (value - x) * new_sat / np.maximum(sat, 1e-12)
    gray = np.concatenate([value, value * (1 - new_sat), value * (1 - new_sat)], axis=-1)
    return np.where(sat > 0, coloured, gray)


def _jpeg(x, c, rng):
    def compress(image):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(c))
        return Image.open(buffer)

    return _per_image_pil(x, compress)


def _pixelate(x, c, rng):
    h, w = x.shape[1:3]
    return _per_image_pil(x, lambda image: image.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX))


def _affine_from_points(source, target):
    """The 2x3 affine map (x, y) -> (x', y') sending three source points to three target points."""
    a = np.hstack([source, np.ones((3, 1))])
    return np.linalg.solve(a, target).T


def _elastic_transform(x, c, rng):
    n, h, w, channels = x.shape
    amplitude, smooth, jitter = (v * h for v in c)
    centre, third = np.array([w, h], np.float64) // 2, min(h, w) // 3
    points = np.array([centre + third, [centre[0] + third, centre[1] - third], centre - third])
    maps, fields = np.empty((n, 2, 3)), np.empty((n, 2, h, w))
    for i in range(n):  # the random numbers, image by image (warp, then the x and y fields)
        forward = _affine_from_points(points, points + rng.uniform(-jitter, jitter, size=(3, 2)))
        inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]
        maps[i] = inverse[::-1, [1, 0, 2]]  # output (row, col) -> source (row, col)
        fields[i] = rng.uniform(-1, 1, size=(2, h, w))
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    # a random affine warp of each image, borders mirrored, then a smooth random displacement field
    source = np.einsum("nij,jhw->nihw", maps[:, :, :2], np.stack([rows, cols])) + maps[:, :, 2, None, None]
    warped = _sample(x, source[:, 0], source[:, 1], "mirror")
    fields = ndimage.gaussian_filter(fields, (0, 0, smooth, smooth), mode="reflect", truncate=3) * amplitude
    return _sample(warped, rows + fields[:, 1], cols + fields[:, 0], "reflect")


def _sample(x, rows, cols, mode):
    """Bilinear samples of each image of ``x`` (N, H, W, C) at its own (rows, cols) (N, H, W), as SciPy's
    ``map_coordinates(order=1, mode=mode)`` per image and channel (one call: the image and channel
    coordinates are whole numbers)."""
    n, h, w, channels = x.shape
    grid = np.broadcast_to
    shape = (n, h, w, channels)
    coordinates = np.stack([grid(np.arange(n, dtype=np.float64)[:, None, None, None], shape),
                            grid(rows[..., None], shape), grid(cols[..., None], shape),
                            grid(np.arange(channels, dtype=np.float64), shape)])
    return ndimage.map_coordinates(x, coordinates, order=1, mode=mode)


_FUNCTIONS = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise, "gaussian_blur": _gaussian_blur, "glass_blur": _glass_blur,
    "defocus_blur": _defocus_blur, "motion_blur": _motion, "zoom_blur": _zoom_blur, "snow": _snow,
    "frost": _frost, "fog": _fog, "brightness": _brightness, "contrast": _contrast, "saturate": _saturate,
    "jpeg_compression": _jpeg, "pixelate": _pixelate, "elastic_transform": _elastic_transform,
}
