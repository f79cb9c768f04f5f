"""Contact sheets of the synthetic demonstrator: first, middle and last frame of one demo per task.

    python -m bench.contact_sheets [--task T ...] [--seed 0] [--variant seen] [--fps 5] [--out docs/contact_sheets]

Records one demo per registered task (into a temp folder) and writes docs/contact_sheets/<task>.png:
three frames side by side with the frame index and time, the hand keypoints drawn as dots
(wrist white, thumb tip red, index tip green), and a caption with the task's goal text.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.demo import DemoReader  # noqa: E402
from sim.demonstrator import record_demo  # noqa: E402
from sim.show import write_png_atomic  # noqa: E402
from sim.tasks import TASKS  # noqa: E402

_KP_COLOURS = {"wrist": (255, 255, 255), "thumb_tip": (230, 40, 40), "index_tip": (40, 200, 40)}


def contact_sheet(demo_dir: Path, title: str = "", tile_width: int = 480) -> np.ndarray:
    """(H, W, 3) RGB: first, middle and last frame of a demo side by side, labelled."""
    reader = DemoReader(demo_dir)
    hand = reader.hand()
    n = len(reader)
    tiles = []
    for i in (0, n // 2, n - 1):
        frame = reader.frame(i)
        img = np.ascontiguousarray(frame.rgb.copy())
        if hand is not None and hand.visible[i]:
            for k, name in enumerate(hand.names):
                if name in _KP_COLOURS:
                    u, v = (int(round(c)) for c in hand.uv[i, k])
                    cv2.circle(img, (u, v), 4, _KP_COLOURS[name], -1, lineType=cv2.LINE_AA)
                    cv2.circle(img, (u, v), 4, (0, 0, 0), 1, lineType=cv2.LINE_AA)
        scale = tile_width / img.shape[1]
        img = cv2.resize(img, (tile_width, int(round(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        label = f"frame {i}/{n - 1}  t={frame.timestamp:.2f}s"
        cv2.rectangle(img, (0, 0), (tile_width, 24), (0, 0, 0), -1)
        cv2.putText(img, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(img)
    row = np.hstack(tiles)
    caption = np.zeros((30, row.shape[1], 3), dtype=np.uint8)
    text = title or reader.meta.task
    cv2.putText(caption, f"{text}   [{reader.meta.demo_id}, camera {reader.meta.camera_name}]", (8, 21),
                cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([caption, row])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", action="append", help="task name (repeatable); default: every registered task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="seen")
    ap.add_argument("--camera", default=None)
    ap.add_argument("--fps", type=float, default=5.0, help="recording rate (only 3 frames are shown)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "contact_sheets")
    args = ap.parse_args(argv)
    names = args.task or sorted(TASKS)
    with tempfile.TemporaryDirectory(prefix="vlmimic-sheets-") as tmp:
        for name in names:
            demo = record_demo(name, args.variant, args.seed, Path(tmp) / f"{name}_{args.variant}_{args.seed}",
                               camera=args.camera, fps=args.fps)
            sheet = contact_sheet(demo, title=f"{name}: {TASKS[name].goal_text}")
            path = write_png_atomic(args.out / f"{name}.png", sheet)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
