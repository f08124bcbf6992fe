"""Reading slides and writing results. numpy in, numpy out; never imports torch.

Examples
--------
>>> from wsikit.io import open_slide
>>> from wsikit.sample import sample_slide_path
>>> slide = open_slide(sample_slide_path())
>>> slide.level_count
1
>>> slide.close()
"""

from __future__ import annotations

from wsikit.io.damage import DamagedRegion, DamageLog
from wsikit.io.open import BACKENDS, open_slide
from wsikit.io.slide import BACKGROUND_RGB, Slide, SlideInfo

__all__ = ["open_slide", "Slide", "SlideInfo", "BACKENDS", "BACKGROUND_RGB", "DamageLog", "DamagedRegion"]
