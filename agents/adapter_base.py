"""The adapter's base: a run's context bound to the step's live objects and the run memory, events,
failing a step, stopping the arm, and the small helpers every part of the adapter uses."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agents.adapter_state import AdapterState, _Live, run_memory
from tools.execution.feasibility import (
    CollisionChecker,
    MujocoCollisionChecker,
    PointCloudCollisionChecker,
)


class AdapterBase:
    """What the adapter's parts share: the run's context, the step's live objects, the run memory."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.live: dict[str, _Live] = {}
        self.memo = run_memory(ctx)

    # --- helpers ---------------------------------------------------------------------------------
    def _key(self, state: AdapterState) -> str:
        return f"{state.get('run_id') or ''}:{state['step']['index']}"

    def _event(self, kind: str, **fields: Any) -> None:
        if self.ctx.tracer is not None:
            self.ctx.tracer.event(kind, **fields)

    def _say(self, text: str) -> None:
        if self.ctx.tracer is not None:
            self.ctx.tracer.say("adapter", text)

    def _idle(self, seconds: float) -> None:
        w = self.ctx.world
        if w is not None:
            w.step(max(1, int(round(seconds / w.timestep))))
        else:
            time.sleep(min(seconds, 0.5))

    def _rounds(self, name: str, default: int) -> int:
        cfg = getattr(self.ctx, "config", None)
        return int(getattr(cfg, name, default)) if cfg is not None else default

    def _fail(self, state: AdapterState, message: str, **fields: Any) -> dict:
        self._stop_arm()
        self._event("adapter_error", step=state["step"]["index"], message=message, **fields)
        self._say(f"step failed: {message}")
        return {"verdict": "failed", "message": message}

    def _stop_arm(self) -> None:
        robot = self.ctx.robot
        if robot is None:
            return
        try:
            robot.stop()
        except Exception as e:  # noqa: BLE001 - stopping must not raise over the real failure
            self._event("adapter_error", message=f"stop() failed: {type(e).__name__}: {e}")

    def _segmenter(self) -> Any:
        from tools.perception.segmenters import make_segmenter

        return make_segmenter(self.ctx.settings.perception, source=getattr(self.ctx.camera, "name", ""))

    def _checker(self, live: _Live, allowed: list[str], hand_only: list[str] | None = None,
                 fingers_only: list[str] | None = None) -> CollisionChecker:
        w = self.ctx.world
        if w is not None and getattr(w, "model", None) is not None:
            return MujocoCollisionChecker(w.model, w.data, allowed_bodies=allowed, hand_only_bodies=hand_only or [],
                                          fingers_only_bodies=fingers_only or [])
        part = [live.scene.objects[n].points for n in fingers_only or [] if n in live.scene.objects]
        return PointCloudCollisionChecker(live.scene.cloud_without(exclude=allowed),
                                          fingers_only=np.vstack(part) if part else None)

    def _T_wm(self, live: _Live) -> np.ndarray:
        """The master's frame the step's trajectory was planned in."""
        if live.T_wm is not None:
            return live.T_wm
        return live.scene.objects[live.step.master or live.skill.master.name].T_world_object
