"""The camera: table plane (cm; x right, y away from the camera) to image pixels, and the photo-like
finish of every scene (grain, uneven light, colour cast, blur, sensor noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mugpos.training.synth.styles import Array, Style
from mugpos.training.synth.textures import _fractal


@dataclass
class Camera:
    """A homography from the table plane to the image, with the elevation that sets object heights."""

    H: Array
    elevation: float  # radians above the table plane
    width: int
    height: int
    px_per_cm: float  # horizontal scale at the image centre
    perspective: float
    rotation_deg: float
    view_w: float = 0.0  # plane extent of the view at its centre line (cm)
    view_d: float = 0.0

    def project(self, pts: Array) -> Array:
        """Plane points (N, 2) in cm -> image points (N, 2) in px."""
        p = np.asarray(pts, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(p, self.H).reshape(-1, 2)

    def unproject(self, pts: Array) -> Array:
        """Image points (N, 2) -> plane points (N, 2)."""
        p = np.asarray(pts, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(p, np.linalg.inv(self.H)).reshape(-1, 2)

    def scales(self, x: float, y: float) -> tuple[float, float]:
        """Local px per cm along the plane's x (image horizontal) and y (image vertical) at a plane point."""
        h = self.H
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
        v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
        dudx, dvdx = (h[0, 0] - u * h[2, 0]) / w, (h[1, 0] - v * h[2, 0]) / w
        dudy, dvdy = (h[0, 1] - u * h[2, 1]) / w, (h[1, 1] - v * h[2, 1]) / w
        return float(math.hypot(dudx, dvdx)), float(math.hypot(dudy, dvdy))


def _camera(rng: np.random.Generator, style: Style, width: int, height: int) -> Camera:
    """Slightly oblique top-down view: modest keystone and roll so boxes stay meaningful."""
    s = rng.uniform(*style.px_per_cm) * math.sqrt(width * height) / math.sqrt(480 * 360)
    el = math.radians(rng.uniform(*style.elevation_deg))
    p = rng.uniform(0.0, 0.05)
    rot = rng.uniform(-2.0, 2.0)
    vw, vd = width / s, height / (s * math.sin(el))
    src = np.array([[-vw / 2, 0], [vw / 2, 0], [vw / 2, vd], [-vw / 2, vd]], np.float32)
    cx, cy = width / 2, height / 2
    dst = np.array(
        [[cx - cx * (1 + p), height], [cx + cx * (1 + p), height], [cx + cx * (1 - p), 0], [cx - cx * (1 - p), 0]],
        np.float64,
    )
    c, si = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    centre = np.array([cx, cy])
    d = dst - centre
    dst = np.stack([d[:, 0] * c - d[:, 1] * si, d[:, 0] * si + d[:, 1] * c], 1) + centre
    H = cv2.getPerspectiveTransform(src, dst.astype(np.float32)).astype(np.float64)
    return Camera(H, el, width, height, s, p, rot, vw, vd)


def _camera_effects(rng: np.random.Generator, style: Style, img: Array) -> Array:
    """Photo-like finish, the same for every scene: grain, uneven light, colour cast, blur, sensor noise."""
    height, width = img.shape[:2]
    grain = img * (1 + rng.uniform(0.0, 0.15) * _fractal(rng, height, width))[..., None]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    grad = ((xx / width - 0.5) * math.cos(ang) + (yy / height - 0.5) * math.sin(ang)) * rng.uniform(0, 0.5)
    vign = 1 - rng.uniform(0, 0.35) * (((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * 2)
    gain = rng.uniform(*style.brightness) * (1 + grad) * vign
    cast = 1 + rng.uniform(-style.colour_cast, style.colour_cast, 3).astype(np.float32)
    out: Array = (grain * gain[..., None] * cast[None, None]).astype(np.float32)
    sigma = rng.uniform(*style.blur_sigma)
    if rng.random() < 0.15:
        k = int(rng.integers(3, 8))
        kernel: Array = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        kernel = (kernel / max(float(kernel.sum()), 1e-6)).astype(np.float32)
        out = cv2.filter2D(out, -1, kernel)
    elif sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out = out + rng.normal(0, rng.uniform(*style.noise_sigma), out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
