"""The simulator's photo scenes come from scikit-image's files without importing it."""
import subprocess
import sys

import numpy as np
import pytest

from device.common import scenes
from tests.conftest import REPO


@pytest.mark.parametrize("name", scenes.PHOTO_NAMES + ("clock", "stereo_motorcycle"))
def test_photos_read_from_the_files_are_scikit_images_own_pixels(name):
    skdata = pytest.importorskip("skimage.data")
    fast = scenes._photo_file(name)
    assert fast is not None, name
    ref = getattr(skdata, name)()
    ref = ref[0] if isinstance(ref, tuple) else ref
    ref = np.repeat(ref[:, :, None], 3, axis=2) if ref.ndim == 2 else ref[:, :, 2::-1]
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(scenes.load_photo(name), ref)


def test_a_simulated_mosaic_never_imports_scikit_image():
    pytest.importorskip("skimage")
    code = ("import sys; from device.config import SimConfig; from device.sources.sim import SimCamera; "
            "cam = SimCamera(SimConfig(scene='mosaic')); f = cam.read(); "
            "assert f.color.std() > 20; "
            "print(' '.join(m for m in ('skimage', 'scipy', 'PIL', 'imageio') if m in sys.modules) or 'none')")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["none"]
