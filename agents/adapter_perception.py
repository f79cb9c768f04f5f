"""What the adapter sees: the step's objects perceived (remembered frames kept through occlusion, a
put-down object in the frame it was carried in), the arm folded out of the camera's view, and the
slave measured after acting."""

from __future__ import annotations

import numpy as np

from agents.adapter_base import AdapterBase
from agents.adapter_compose import _within
from agents.adapter_contents import read_contents, remember
from agents.adapter_state import (
    APPROACH_SPEED,
    OBSERVE_QS,
    OCCLUDED_SHARE,
    OCCLUDED_SHIFT_M,
    PLACED_AGREE_M,
    SAME_PLACE_M,
    AdapterError,
    _Live,
)
from core.errors import VLMimicError
from core.geometry import Pose, invert_transform, rotation_angle, transform_points
from core.motion import PANDA_Q_MAX, PANDA_Q_MIN
from tools.execution.verify import relation
from tools.perception.registration import register_after
from tools.perception.scene import PerceivedObject, PerceivedScene, perceive

# a part seen this far (or turned this much) from where the hand says it is has slipped in the grasp:
# well above the registration's noise on a partly hidden part (a few mm, a few degrees)
PART_SLIP_M = 0.02
PART_SLIP_DEG = 10.0
PART_PRIORS = 12  # poses along the planned motion that the registration starts from
# a whole object registered onto what shows of it: only poses this close to the best supported tie (a
# pan's disc fits any turn; its handle, 5 % of its points, tells them apart)
WHOLE_TIE_SHARE = 0.01


class AdapterPerception(AdapterBase):
    """Perception before and after acting."""

    def _perceive(self, names: list[str], parents: dict[str, str], required: list[str] | None = None) -> PerceivedScene:
        if self.ctx.camera is None:
            raise AdapterError("no camera in this run: the adapter cannot see the scene")
        frame = self.ctx.camera.capture()
        first = not self.memo.frames  # the run's first look: remember every object while the view is clear
        scene = perceive(frame, names, self._segmenter(), parents=parents, all_objects=first)
        unseen = [n for n in (required or []) if n in scene.missing and n not in self.memo.frames]
        # with the hand empty, an object the arm cuts off is looked at again with the arm out of the way
        # (a bbox fitted to the part that shows is short, and a grasp placed by its fractions is off);
        # what the hand holds is always partly behind it, so not then
        empty = self.memo.held is None and self.ctx.robot is not None and not self.ctx.robot.is_grasping()
        unseen += [n for n in (required or []) if empty and n in scene.hidden_by_arm and n not in unseen]
        if unseen and self._clear_view(unseen):
            # the arm stood between the camera and the object: look again with the arm out of the way
            frame = self.ctx.camera.capture()
            scene = perceive(frame, names, self._segmenter(), parents=parents, all_objects=first)
        # Objects that have not moved keep the frame of their first (unoccluded) sighting: the arm
        # in front of an object shrinks its visible cloud, and with it the bbox.
        # A cloud much smaller than the remembered one is an occluded view of the same object (the arm
        # or a held object in front of it): its centre shifts towards the visible part, so it keeps the
        # remembered frame unless it is clearly somewhere else (its centre far off and its points
        # outside the remembered box: a strip of a pan under the brush that scrubs it is still the pan).
        # An object reaching the image's edge is a partial view in the same way (a pan in a sink near the
        # camera, its handle outside the picture).
        for n, obj in list(scene.objects.items()):
            cut = n in scene.cut_by_view
            scene.objects[n] = obj = self._as_placed(obj, cut)
            old = self.memo.frames.get(n)
            shift = np.linalg.norm(obj.T_world_object[:3, 3] - old.T_world_object[:3, 3]) if old is not None else 0.0
            occluded = old is not None and (cut or len(obj.points) < OCCLUDED_SHARE * len(old.points))
            if old is None:
                self.memo.frames[n] = obj
            elif shift < SAME_PLACE_M or (occluded and (shift < OCCLUDED_SHIFT_M or _within(obj.points, old))):
                scene.objects[n] = old
            else:
                if cut:  # moved, and only partly in the picture: the remembered cloud laid onto what shows
                    scene.objects[n] = obj = self._registered(obj, old, [old.T_world_object]) or obj
                self.memo.frames[n] = obj
        # an object hidden now (behind the arm, in the hand) keeps the frame it was last seen in
        for n in list(scene.missing):
            if n in self.memo.frames:
                scene.objects[n] = self.memo.frames[n]
                scene.missing.remove(n)
        if first:
            # what every object holds while the view is clear: the baseline a later pour is judged against
            # when the arm then hides a container's inside (agents/adapter_contents.py); one segmentation
            try:
                remember(self.memo.contents, read_contents(
                    self.ctx.camera, self._segmenter(),
                    [(n, o.T_world_object, o.size) for n, o in scene.objects.items()]))
            except Exception as e:  # noqa: BLE001 - no baseline only means a later pour may go unjudged
                self._event("tool_result", tool="contents", duration_s=0.0,
                            result=f"contents not measured at the first look: {type(e).__name__}: {e}")
        return scene

    def _as_placed(self, obj: PerceivedObject, cut: bool = False) -> PerceivedObject:
        """An object the arm put down keeps the frame it was carried in, where the view agrees with it.

        The canonical frame of a footprint with no clear long side (a pan: a disc and a handle) is fitted
        differently from view to view (in a sink, its walls hide part of it), and its centre moves by
        centimetres with it: a grasp measured against one fit and a placement written in another put
        the object centimetres off (a pan set down half on the rack beside it). Where the arm let go
        of it, the object's frame is known from the grasp: the hand's pose times the grasp's offset.
        Its height is the one seen now (it drops onto its support); a view whose centre lies more than
        PLACED_AGREE_M away means the object moved since (it slid, something pushed it), unless the view
        is `cut` off by the image's edge: then only what shows is compared with the box it was put down
        in (the centre of what shows of a pan whose handle lies outside the picture is 9 cm off)."""
        rec = self.memo.placed.get(obj.name)
        if rec is None:
            return obj
        T_drop, size = rec.T_world_object, rec.size or tuple(float(v) for v in obj.size)
        T_seen = obj.T_world_object
        off = float(np.linalg.norm(T_seen[:2, 3] - T_drop[:2, 3]))
        # the whole of it as it was grasped, where the hand let go of it: what a cut view is part of
        whole = None
        if cut and rec.points_object is not None:
            d = obj.descriptor.model_copy(update={"T_world_object": Pose.from_matrix(T_drop), "bbox_size": size})
            whole = obj.model_copy(update={"descriptor": d, "points": transform_points(T_drop, rec.points_object)})
        if (off > PLACED_AGREE_M and not cut) or abs(float(T_drop[2, 2])) < 0.9:
            return self._moved_since(obj, whole, T_drop, f"is seen {off * 100:.1f} cm from where the hand let go of it")
        T = T_drop.copy()
        T[2, 3] = T_seen[2, 3] - 0.5 * float(obj.size[2]) + 0.5 * float(size[2])  # standing where it is seen
        d = obj.descriptor.model_copy(update={"T_world_object": Pose.from_matrix(T), "bbox_size": size})
        carried = obj.model_copy(update={"descriptor": d})
        if not _within(obj.points, carried, margin=0.015, share=0.97):
            # what is seen sticks out of the box it was put down in: it was pushed or turned since
            return self._moved_since(obj, whole, T_drop, "no longer fits the box it was put down in")
        if whole is not None:  # what shows is part of it: keep the whole cloud, standing where it is seen
            carried = carried.model_copy(update={"points": transform_points(T, rec.points_object)})
        return carried

    def _moved_since(self, obj: PerceivedObject, whole: PerceivedObject | None, T_drop: np.ndarray,
                     why: str) -> PerceivedObject:
        """A put-down object that moved since: forgotten as placed; its frame from the view, or, for a
        view cut off by the picture, from its whole cloud registered onto what shows."""
        self.memo.placed.pop(obj.name, None)
        found = self._registered(obj, whole, [T_drop])
        how = "its whole cloud is registered onto what shows" if found is not None \
            else "its frame is fitted to the view"
        self._event("tool_result", tool="adapter", duration_s=0.0,
                    result=f"the {obj.name} {why}: it moved since; {how}")
        return found or obj

    def _registered(self, seen: PerceivedObject, earlier: PerceivedObject | None,
                    priors: list[np.ndarray]) -> PerceivedObject | None:
        """An object that moved and reaches the image's edge, where the box fitted to what shows is not
        its own (a pan in a sink, its handle outside the picture, fits a box 9 cm off): its `earlier`
        cloud registered onto what shows (from `priors` and the fitted frame, turned about the vertical),
        in its earlier frame and size; None when there is no earlier cloud or the registration is not
        confidently supported. A put-down object's earlier cloud is the whole one taken at its grasp; any
        other object's is the one last remembered, itself perhaps a partial view."""
        if earlier is None:
            return None
        reg = register_after(earlier.points, earlier.T_world_object, seen.points, [*priors, seen.T_world_object],
                             tie_share=WHOLE_TIE_SHARE)
        if reg is None or not reg.confident:
            return None
        M = reg.T_world_object @ invert_transform(earlier.T_world_object)
        d = earlier.descriptor.model_copy(update={"T_world_object": Pose.from_matrix(reg.T_world_object)})
        self._event("tool_result", tool="adapter", duration_s=0.0,
                    result=f"the {seen.name} reaches the image's edge: {reg.inlier_share:.0%} of what shows lies on "
                           "its earlier cloud, registered")
        return earlier.model_copy(update={"descriptor": d, "points": transform_points(M, earlier.points)})

    def _clear_view(self, unseen: list[str]) -> bool:
        """Fold the arm out of the camera's view (elbow back and up over the base) until `unseen`
        objects show whole (none missing, none cut off by the arm); True if the arm moved. The arm in its
        working pose often hides an object near the robot from an overhead camera behind it."""
        robot = self.ctx.robot
        if robot is None or self.ctx.camera is None:
            return False
        q_now = np.asarray(robot.joint_positions(), dtype=float)
        moved = False
        for q in OBSERVE_QS:
            q = np.array(q, dtype=float)
            # keep the wrist's twist (a held object stays as it is), inside the limits the safety layer
            # enforces: a wrist turned to its end stop (a brush put down at a far place) would have the
            # whole fold refused and the view stay blocked
            margin = float(self.ctx.settings.safety.joint_margin_rad) + 0.01
            q[6] = float(np.clip(q_now[6], PANDA_Q_MIN[6] + margin, PANDA_Q_MAX[6] - margin))
            try:
                r = robot.move_to_joints(q, speed_factor=APPROACH_SPEED)
            except VLMimicError as e:  # refused by the safety layer: look from where the arm is
                self._event("tool_result", tool="adapter", duration_s=0.0,
                            result=f"clearing the camera's view of {unseen}: refused ({e})")
                continue
            moved = True
            self._event("tool_result", tool="adapter", result=f"clearing the camera's view of {unseen}: "
                        f"arm to {np.round(q, 2).tolist()} ({r.status.value})", duration_s=0.0)
            if not r.ok:
                continue
            self._idle(0.1)
            seg = perceive(self.ctx.camera.capture(), unseen, self._segmenter())
            if not [n for n in unseen if n in seg.missing or n in seg.hidden_by_arm]:
                break
        return moved

    def _part_seen_after(self, live: _Live, T_ms_hand: np.ndarray) -> np.ndarray:
        """A held part's relation to its master after the motion, as seen (arm retreated), where the view
        overrules the hand: the part clearly seen somewhere else than the hand implies (the grasp turned
        about a lever that stayed behind). Otherwise `T_ms_hand`, the hand's account."""
        step = live.step
        before = live.scene.objects.get(step.slave or "")
        if before is None or self.ctx.camera is None or live.planned_ms is None or live.start_ms is None:
            return T_ms_hand
        try:
            scene = perceive(self.ctx.camera.capture(), [step.slave], self._segmenter())
            if step.slave in scene.missing and self._clear_view([step.slave or ""]):
                scene = perceive(self.ctx.camera.capture(), [step.slave], self._segmenter())
        except Exception:  # noqa: BLE001 - not seen: the hand's account stands
            return T_ms_hand
        now = scene.objects.get(step.slave or "")
        if now is None:
            return T_ms_hand
        T_wm = self._T_wm(live)
        S0_inv = invert_transform(T_wm @ live.start_ms)

        def motion(T_ms: np.ndarray) -> np.ndarray:  # the world motion taking the part from its start to T_ms
            return T_wm @ T_ms @ S0_inv

        plan = live.planned_ms
        idx = np.unique(np.linspace(0, len(plan) - 1, min(len(plan), PART_PRIORS)).round().astype(int))
        motions = [motion(plan[int(k)]) for k in idx] + [motion(T_ms_hand)]
        reg = register_after(before.points, before.T_world_object, now.points,
                             [M @ before.T_world_object for M in motions])
        if reg is None or not reg.confident:
            return T_ms_hand
        M_seen = reg.T_world_object @ invert_transform(before.T_world_object)
        T_ms_seen = invert_transform(T_wm) @ M_seen @ T_wm @ live.start_ms
        off = float(np.linalg.norm(T_ms_seen[:3, 3] - T_ms_hand[:3, 3]))
        turn = float(np.degrees(rotation_angle(T_ms_seen[:3, :3], T_ms_hand[:3, :3])))
        if off < PART_SLIP_M and turn < PART_SLIP_DEG:
            return T_ms_hand
        # where the part is now, for whatever comes next (a re-grasp takes it where it is, not where it was)
        d = before.descriptor.model_copy(update={"T_world_object": Pose.from_matrix(reg.T_world_object)})
        self.memo.frames[before.name] = before.model_copy(
            update={"descriptor": d, "points": transform_points(M_seen, before.points)})
        if self.memo.held is not None and self.memo.held.name == before.name:
            self.memo.held.T_world_object = reg.T_world_object
        self._event("tool_result", tool="adapter", duration_s=0.0,
                    result=f"the {step.slave} is seen {off * 100:.1f} cm and {turn:.0f} deg from where the hand "
                           f"left it ({reg.inlier_share:.0%} of its points registered): it slipped in the grasp; "
                           "the review judges what is seen")
        return T_ms_seen

    def _measure_after(self, live: _Live, direction: np.ndarray | None, placed: bool = False) -> np.ndarray:
        """The slave's pose in the master frame, perceived after the attempt (arm retreated).

        An object just put down is measured with the arm out of the camera's view: the retreated arm
        often hides part of it (a pan's handle under the wrist), and a box fitted to what is left of it
        puts its centre centimetres away from where it lies."""
        step = live.step
        assert live.start_ms is not None
        try:
            if placed:
                self._clear_view([step.slave or ""])
            scene = perceive(self.ctx.camera.capture(), [step.slave], self._segmenter())
            if step.slave in scene.missing and self._clear_view([step.slave or ""]):
                # the retreated arm hides what it put down: look again with the arm out of the way
                scene = perceive(self.ctx.camera.capture(), [step.slave], self._segmenter())
        except Exception:  # noqa: BLE001 - nothing measured: no motion credited
            return live.start_ms
        obj = scene.objects.get(step.slave or "")
        if obj is None:
            return live.start_ms
        if placed:  # seen with the arm out of the way: the frame later (occluded) views are held to
            cut = obj.name in scene.cut_by_view
            self.memo.frames[obj.name] = as_placed = self._as_placed(obj, cut)
            if cut:  # the box fitted to what shows inside the picture is not the object's: measure the
                obj = as_placed  # one it was put down in, where what shows agrees with it (_as_placed)
        if live.skill.slave is not None and live.skill.slave.parent and direction is not None \
                and live.before_support is not None:
            # a part: its front moves with it even as more of it comes into view
            shift = float(np.max(obj.points @ direction)) - live.before_support
            d_master = self._T_wm(live)[:3, :3].T @ direction
            T = live.start_ms.copy()
            T[:3, 3] += d_master * shift
            assert live.planned_ms is not None
            full = float(np.linalg.norm(live.planned_ms[-1][:3, 3] - live.planned_ms[0][:3, 3]))
            if full > 1e-6:  # credit rotation in proportion to the displacement (arcs)
                from scipy.spatial.transform import Rotation as Rot

                rv = Rot.from_matrix(live.planned_ms[-1][:3, :3] @ live.start_ms[:3, :3].T).as_rotvec()
                T[:3, :3] = Rot.from_rotvec(rv * float(np.clip(shift / full, 0, 1.5))).as_matrix() @ T[:3, :3]
            return T
        # a placed object: its position (a symmetric object's yaw is not observable)
        T = live.planned_ms[-1].copy() if live.planned_ms is not None else live.start_ms.copy()
        T[:3, 3] = relation(self._T_wm(live), obj.T_world_object)[:3, 3]
        return T
