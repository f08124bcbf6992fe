"""Stream 224 px tissue patches of the bundled sample slide in batches, as a model would consume them.

Run: python examples/stream_patches.py [SLIDE]
"""

from __future__ import annotations

import sys

from wsikit.io import open_slide
from wsikit.sample import sample_slide_path
from wsikit.tiling import PatchStream, TileGrid, select_tiles, tissue_mask


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else sample_slide_path()
    with open_slide(path) as slide:
        print(slide)
        grid = TileGrid.for_slide(slide, tile_size=224)  # native resolution; mpp=0.5 for a fixed scale
        tissue = tissue_mask(slide)
        tiles = select_tiles(grid, tissue, min_tissue=0.25)
        print(f"{len(tiles)} of {len(grid)} tiles hold tissue ({100 * tissue.fraction:.0f}% of the slide)")
        stream = PatchStream(slide, grid, tiles, batch_size=16)
        for batch in stream:
            x = batch.images.float().div_(255)  # (B, 3, 224, 224) in [0, 1]
            first = batch.tiles[0]
            print(
                f"batch {tuple(x.shape)} mean {x.mean():.3f}, first tile at level-0 ({first.x0:.0f}, {first.y0:.0f})"
            )
        print(
            f"read {stream.stats.tiles} tiles; the consumer waited {100 * stream.stats.wait_share:.0f}% of the time"
        )


if __name__ == "__main__":
    main()
