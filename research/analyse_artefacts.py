"""Choose and score the colour rule (wsikit.segment.artefacts) on research/study_artefacts.py's features.

Validation data only (MoNuSeg 2018 images the shipped U-Net never trained on, with painted ink; BRCA-M2C val).
Writes research/results_artefacts.json: per candidate rule, the share of annotated nuclei (objects >= 7.5 um^2)
it rejects per source and the share of objects on each ink it rejects.

Usage::

    python research/analyse_artefacts.py research/artefact_features.npz
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

CANDIDATES = [(0.95, 0.3, 0.75), (1.0, 0.25, 0.8), (1.0, 0.3, 0.75), (0.9, 0.3, 0.72)]
CHOSEN = (1.0, 0.3, 0.75)  # the most ink rejected while no source loses more than 0.1% of its nuclei


def main(path: Path) -> None:
    d = np.load(path)
    t, inks = d["table"], [str(x) for x in d["inks"]]
    c = {str(k): t[:, i] for i, k in enumerate(d["columns"])}
    src, kind = c["source"], c["kind"]
    # wsikit run's 7.5 um^2 minimum: 120 px at MoNuSeg's 0.25 um/px, 30 px at BRCA-M2C's ~0.5 um/px
    big = c["area_px"] >= np.where(src == 2, 30, 120)
    rg = c["od_r"] / np.maximum(c["od_g"], 1e-6)
    bg = c["od_b"] / np.maximum(c["od_g"], 1e-6)
    groups = {
        "nuclei, monuseg_extra train (7 organs)": (src == 0) & (kind == 0) & big,
        "nuclei, brca_m2c val (points)": (src == 2) & (kind == 0) & big,
        "annotated nuclei on the inked images (some under ink)": (src == 1) & (kind == 0) & big,
        "unmatched objects, monuseg_extra train": (src == 0) & (kind == 1) & big,
        **{f"objects on {ink} ink": (kind == 2) & (c["ink"] == i) for i, ink in enumerate(inks)},
    }
    rows = []
    for mx, mn, mb in CANDIDATES:
        rej = (rg > mx) | (rg < mn) | (bg > mb)
        rows.append(
            {
                "rule": {"max_red_to_green": mx, "min_red_to_green": mn, "max_blue_to_green": mb},
                "chosen": (mx, mn, mb) == CHOSEN,
                "rejected_share": {k: round(float(rej[s].mean()), 4) for k, s in groups.items()},
                "count": {k: int(s.sum()) for k, s in groups.items()},
            }
        )
        print(rows[-1]["rule"], rows[-1]["rejected_share"])
    out = path.with_name("results_artefacts.json")
    out.write_text(json.dumps({"features": str(path), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
