"""Damaged tiles: regions of a slide that cannot be decoded, skipped instead of failing the whole slide.

Scanned archives hold slides with a few corrupt tiles (bad JPEG / JPEG 2000 data). A slide with
:meth:`~wsikit.io.Slide.skip_damaged` set reads such regions as glass (white, so no tissue is found
there) and records each unreadable block once in a :class:`DamageLog`; without it a bad tile raises
:class:`~wsikit.errors.SlideReadError` as before.

Examples
--------
>>> log = DamageLog()
>>> log.add(DamagedRegion(x=0, y=0, width=256, height=256, level=0, error="Not a JPEG file"))
True
>>> log.add(DamagedRegion(x=0, y=0, width=256, height=256, level=0, error="again"))
False
>>> log.area_px
65536
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["DamagedRegion", "DamageLog"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DamagedRegion:
    """One unreadable block: its box in level-0 pixels, the level it was read at, and the decoder's error."""

    x: int
    y: int
    width: int
    height: int
    level: int
    error: str

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        """Identity of the block (the error text may vary between reads of the same block)."""
        return (self.level, self.x, self.y, self.width, self.height)

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for JSON."""
        return asdict(self)


class DamageLog:
    """A thread-safe set of :class:`DamagedRegion`, each logged once, optionally kept in a JSON-lines file.

    Parameters
    ----------
    journal : pathlib.Path, optional
        A ``.jsonl`` file: regions already in it are loaded (a resumed run knows what an earlier one found)
        and every new region is appended and flushed at once, so a crash loses none.
    on_new : callable, optional
        Called with each new region (after it is recorded).
    """

    def __init__(
        self, journal: Path | None = None, on_new: Callable[[DamagedRegion], None] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._regions: dict[tuple[int, int, int, int, int], DamagedRegion] = {}
        self._journal = journal
        self._on_new = on_new
        if journal is not None and journal.exists():
            for line in journal.read_text().splitlines():
                if line.strip():
                    try:
                        r = DamagedRegion(**json.loads(line))
                    except (ValueError, TypeError):  # a line cut by a crash: the block is found again
                        continue
                    self._regions[r.key] = r

    def add(self, region: DamagedRegion) -> bool:
        """Record ``region``; returns whether it was new (and so logged)."""
        with self._lock:
            if region.key in self._regions:
                return False
            self._regions[region.key] = region
            if self._journal is not None:
                with open(self._journal, "a") as fh:
                    fh.write(json.dumps(region.to_dict()) + "\n")
        log.warning(
            "unreadable %dx%d px at (%d, %d) of level %d (painted as glass): %s",
            region.width,
            region.height,
            region.x,
            region.y,
            region.level,
            region.error,
        )
        if self._on_new is not None:
            self._on_new(region)
        return True

    def extend(self, regions: Iterable[DamagedRegion]) -> None:
        """Record several regions."""
        for r in regions:
            self.add(r)

    @property
    def regions(self) -> list[DamagedRegion]:
        """Every region recorded, ordered by (y, x, level)."""
        with self._lock:
            return sorted(self._regions.values(), key=lambda r: (r.y, r.x, r.level, r.width, r.height))

    @property
    def area_px(self) -> int:
        """Level-0 pixels covered by the regions (their union: blocks of several levels may overlap)."""
        import shapely

        boxes = [shapely.box(r.x, r.y, r.x + r.width, r.y + r.height) for r in self.regions]
        return int(round(shapely.union_all(boxes).area)) if boxes else 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._regions)
