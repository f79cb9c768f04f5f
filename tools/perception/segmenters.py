"""The `Segmenter` seam (DESIGN §3): per-frame boolean masks with object names.

- `ChannelSegmenter`: the demo's segmentation channel (the simulator renders it), reported in every
  output as "perfect segmenter (simulator channel)".
- `GroundedSamSegmenter`: Grounding DINO (text-prompted boxes) + SAM (box-prompted masks) through
  transformers, loaded ONLY from the local folders in settings.perception.grounding_dino_path and
  settings.perception.sam_path (never downloaded). Boxes are detected on the first frame and every
  `redetect_every` frames; in between, each object's previous mask box prompts SAM, so masks are
  carried across frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from core.errors import BackendUnavailable, DemoFormatError
from core.sensing import RGBDFrame
from core.settings import PerceptionSettings

CHANNEL_SEGMENTER_NAME = "perfect segmenter (simulator channel)"
# Segmentation labels that are scene infrastructure, never objects to ground.
NON_OBJECT_LABELS = frozenset({"hand", "table", "robot", "floor", "background", "world", "wall"})


@runtime_checkable
class Segmenter(Protocol):
    name: str

    def reset(self) -> None:
        """Forget what was carried from earlier frames (call before a new video)."""
        ...

    def segment(self, frame: RGBDFrame, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        """Boolean (H, W) mask per prompted name that is visible in this frame."""
        ...


class ChannelSegmenter:
    """Masks straight from the demo's segmentation channel (ids -> names in meta.labels)."""

    name = CHANNEL_SEGMENTER_NAME

    def __init__(self, source: str = "") -> None:
        self._source = source

    def reset(self) -> None:
        pass

    def label_ids(self, frame: RGBDFrame) -> dict[str, list[int]]:
        if frame.segmentation is None or not frame.labels:
            where = f"{self._source}: " if self._source else ""
            raise DemoFormatError(
                f"{where}frame at t={frame.timestamp:.3f}s has no segmentation channel; set "
                "perception.segmenter='grounded_sam' (VLMIMIC_PERCEPTION__SEGMENTER) to segment from images"
            )
        ids: dict[str, list[int]] = {}
        for i, n in frame.labels.items():
            ids.setdefault(n, []).append(int(i))
        return ids

    def segment(self, frame: RGBDFrame, prompts: Sequence[str] = ()) -> dict[str, np.ndarray]:
        ids = self.label_ids(frame)
        names = list(prompts) if prompts else list(ids)
        seg = frame.segmentation
        assert seg is not None
        out: dict[str, np.ndarray] = {}
        for n in names:
            if n not in ids:
                continue
            m = seg == ids[n][0] if len(ids[n]) == 1 else np.isin(seg, ids[n])
            if m.any():
                out[n] = m
        return out


class GroundedSamSegmenter:
    """Grounding DINO + SAM from local weights; masks carried across frames by box prompts."""

    name = "Grounding DINO + SAM (local weights)"

    def __init__(
        self,
        grounding_dino_path: Path | None,
        sam_path: Path | None,
        box_threshold: float = 0.3,
        text_threshold: float = 0.25,
        redetect_every: int = 15,
        device: str = "cpu",
    ) -> None:
        self._dino_path = _check_weights(grounding_dino_path, "perception.grounding_dino_path", "Grounding DINO")
        self._sam_path = _check_weights(sam_path, "perception.sam_path", "SAM")
        try:
            import torch
            from transformers import (
                AutoModelForZeroShotObjectDetection,
                AutoProcessor,
                SamModel,
                SamProcessor,
            )
        except ImportError as e:  # pragma: no cover - pinned dependencies
            raise BackendUnavailable(f"Grounded SAM needs torch and transformers: {e}") from e
        self._torch = torch
        try:
            self._dino_proc = AutoProcessor.from_pretrained(self._dino_path, local_files_only=True)
            self._dino = AutoModelForZeroShotObjectDetection.from_pretrained(
                self._dino_path, local_files_only=True
            ).to(device).eval()
            self._sam_proc = SamProcessor.from_pretrained(self._sam_path, local_files_only=True)
            self._sam = SamModel.from_pretrained(self._sam_path, local_files_only=True).to(device).eval()
        except (OSError, ValueError) as e:
            raise BackendUnavailable(
                f"could not load Grounding DINO from {self._dino_path} / SAM from {self._sam_path} "
                f"(settings perception.grounding_dino_path / perception.sam_path): {e}"
            ) from e
        self.device = device
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.redetect_every = max(1, redetect_every)
        self.reset()

    @classmethod
    def from_settings(cls, settings: PerceptionSettings) -> GroundedSamSegmenter:
        return cls(settings.grounding_dino_path, settings.sam_path)

    def reset(self) -> None:
        self._boxes: dict[str, np.ndarray] = {}
        self._n = 0

    def _detect(self, rgb: np.ndarray, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        torch = self._torch
        text = ". ".join(p.replace("_", " ") for p in prompts) + "."
        inputs = self._dino_proc(images=rgb, text=text, return_tensors="pt").to(self.device)
        with torch.no_grad():
            outputs = self._dino(**inputs)
        res = self._dino_proc.post_process_grounded_object_detection(
            outputs,
            inputs.input_ids,
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[rgb.shape[:2]],
        )[0]
        best: dict[str, tuple[float, np.ndarray]] = {}
        for score, box, label in zip(res["scores"], res["boxes"], res["text_labels"], strict=False):
            name = _match_prompt(str(label), prompts)
            if name is None:
                continue
            s = float(score)
            if name not in best or s > best[name][0]:
                best[name] = (s, box.cpu().numpy().astype(float))
        return {n: b for n, (_, b) in best.items()}

    def _masks_from_boxes(self, rgb: np.ndarray, boxes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not boxes:
            return {}
        torch = self._torch
        names = list(boxes)
        inputs = self._sam_proc(rgb, input_boxes=[[boxes[n].tolist() for n in names]], return_tensors="pt").to(
            self.device
        )
        with torch.no_grad():
            out = self._sam(**inputs, multimask_output=False)
        masks = self._sam_proc.image_processor.post_process_masks(
            out.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu()
        )[0]
        return {n: masks[k, 0].numpy().astype(bool) for k, n in enumerate(names)}

    def segment(self, frame: RGBDFrame, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        if self._n % self.redetect_every == 0 or any(p not in self._boxes for p in prompts):
            detected = self._detect(frame.rgb, prompts)
            self._boxes.update(detected)
        self._n += 1
        boxes = {p: self._boxes[p] for p in prompts if p in self._boxes}
        masks = {n: m for n, m in self._masks_from_boxes(frame.rgb, boxes).items() if m.any()}
        h, w = frame.depth.shape
        for n, m in masks.items():  # carry: the next frame is prompted with this mask's box, grown 10 %
            v, u = np.nonzero(m)
            x0, x1, y0, y1 = u.min(), u.max(), v.min(), v.max()
            gx, gy = 0.1 * (x1 - x0 + 1), 0.1 * (y1 - y0 + 1)
            self._boxes[n] = np.array([max(0, x0 - gx), max(0, y0 - gy), min(w - 1, x1 + gx), min(h - 1, y1 + gy)])
        return masks


def _match_prompt(label: str, prompts: Sequence[str]) -> str | None:
    label = label.strip().lower()
    for p in prompts:
        if p.replace("_", " ").lower() == label:
            return p
    for p in prompts:
        if p.replace("_", " ").lower() in label or label in p.replace("_", " ").lower():
            return p
    return None


def _check_weights(path: Path | None, setting: str, what: str) -> Path:
    env = "VLMIMIC_" + setting.upper().replace(".", "__")
    if path is None:
        raise BackendUnavailable(
            f"{what} weights are not configured: set {setting} ({env}) to a local model folder; "
            "weights are never downloaded"
        )
    p = Path(path).expanduser()
    if not p.is_dir() or not (p / "config.json").is_file():
        raise BackendUnavailable(
            f"{what} weights not found at {p} (setting {setting}, {env}): expected a local transformers "
            "model folder with config.json; weights are never downloaded"
        )
    return p


def make_segmenter(settings: PerceptionSettings, source: str = "") -> Segmenter:
    if settings.segmenter == "channel":
        return ChannelSegmenter(source)
    return GroundedSamSegmenter.from_settings(settings)
