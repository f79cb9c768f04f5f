"""Execution through ctx.robot: grasping (open, pre-grasp, grasp, close, verify), re-grasping a slipped
slave, and following a manipulation trajectory, releasing where the slave rests, and judging the
motion from what is measured after it."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.adapter_contents import Reading, baseline, judge_transfer, read_contents, remember
from agents.adapter_planning import AdapterPlanning
from agents.adapter_state import (
    APPROACH_SPEED,
    CONTACT_SPEED,
    GRASP_FORCE_N,
    HELD_SPEED,
    SAME_PLACE_M,
    SETTLE_S,
    _Held,
    _Live,
    _Placed,
)
from agents.reasoning.questions import ExecutionFacts, Revision
from core.geometry import Pose, invert_transform, transform_points
from core.grounding import HAND, Phase
from tools.constraints.sweep import is_oscillating_program
from tools.execution.candidates import retreat_pose
from tools.execution.verify import (
    judge_motion,
    placed_height_tolerance,
    placement_tolerance,
    relation,
    verify_grasp,
)


class AdapterExecution(AdapterPlanning):
    """Acting on the planned instance."""

    def _move(self, poses: list[Pose], speed: float) -> Any:
        return self.ctx.robot.follow_poses(poses, speed_factor=speed)

    def _execute_grasp(self, live: _Live, rev: Revision) -> ExecutionFacts:
        robot, g = self.ctx.robot, live.grasp
        assert g is not None
        if robot.is_grasping():
            robot.open_gripper(0.08)
            self.memo.held = None
        robot.open_gripper(0.08)
        r = self._move([g.pregrasp], APPROACH_SPEED)
        if not r.ok:
            return ExecutionFacts(phase=Phase.grasping, motion_status=r.status.value, message=r.message)
        r = self._move([g.grasp], CONTACT_SPEED)
        if not r.ok:
            self._move([g.pregrasp], APPROACH_SPEED)
            return ExecutionFacts(phase=Phase.grasping, motion_status=r.status.value, message=r.message)
        force = float(np.clip(GRASP_FORCE_N * rev.grasp_force_scale, 5.0, 70.0))
        res = robot.grasp(width=g.width, force=force, epsilon_inner=max(g.width - 0.001, 0.0), epsilon_outer=0.08)
        verdict = verify_grasp(res.success, robot.gripper_width(), robot.is_grasping(), g.width)
        if not verdict.held:
            robot.open_gripper(0.08)
            self._move([g.pregrasp], APPROACH_SPEED)
            return ExecutionFacts(phase=Phase.grasping, motion_status="done", grasp_closed_on_object=False,
                                  gripper_width_after=verdict.width, object_held_at_end=False, message=verdict.message)
        obj = live.scene.objects[live.step.master or live.skill.master.name]
        ee = robot.ee_pose().matrix()
        self.memo.placed.pop(obj.name, None)
        self.memo.held = _Held(name=obj.name, T_object_gripper=invert_transform(obj.T_world_object) @ ee,
                               T_world_object=obj.T_world_object, grasp_skill=live.skill.id, width=verdict.width,
                               size=tuple(float(v) for v in obj.size),  # type: ignore[arg-type]
                               points_object=transform_points(invert_transform(obj.T_world_object), obj.points))
        return ExecutionFacts(phase=Phase.grasping, motion_status="done", grasp_closed_on_object=True,
                              gripper_width_after=verdict.width, object_held_at_end=True, message=verdict.message)

    def _regrasp(self, live: _Live) -> str:
        """Take the slave again the way it was taken before (after a slip or a release)."""
        held = self.memo.held
        robot = self.ctx.robot
        name = live.step.slave
        if held is None or held.name != name or name not in live.scene.objects:
            return f"the {name} is not in the gripper and there is no earlier grasp of it to repeat"
        scene = self._perceive([name], {})
        if name not in scene.objects:
            return f"the {name} is no longer visible"
        T_wo = scene.objects[name].T_world_object
        if np.linalg.norm(T_wo[:3, 3] - held.T_world_object[:3, 3]) < SAME_PLACE_M:
            T_wo = held.T_world_object
        T_wg = T_wo @ held.T_object_gripper
        grasp = Pose.from_matrix(T_wg)
        pre = retreat_pose(grasp, 0.08, 0.0)
        robot.open_gripper(0.08)
        for p, s in ((pre, APPROACH_SPEED), (grasp, CONTACT_SPEED)):
            r = self._move([p], s)
            if not r.ok:
                return f"re-grasp motion {r.status.value}: {r.message}"
        res = robot.grasp(width=held.width, force=GRASP_FORCE_N, epsilon_inner=max(held.width - 0.001, 0.0),
                          epsilon_outer=0.08)
        v = verify_grasp(res.success, robot.gripper_width(), robot.is_grasping())
        if not v.held:
            robot.open_gripper(0.08)
            self._move([pre], APPROACH_SPEED)
            return f"re-grasp missed: {v.message}"
        held.T_world_object = T_wo
        held.T_object_gripper = invert_transform(T_wo) @ robot.ee_pose().matrix()
        return ""

    def _execute_manipulation(self, live: _Live, rev: Revision) -> ExecutionFacts:
        robot, step = self.ctx.robot, live.step
        hand = step.slave in (None, HAND)
        if not hand and not robot.is_grasping():
            why = self._regrasp(live)
            if why:
                return ExecutionFacts(phase=Phase.manipulation, motion_status="done", grasp_closed_on_object=False,
                                      object_held_at_end=False, message=why)
            problem = self._plan_manipulation(live, rev)
            if problem:
                return ExecutionFacts(phase=Phase.manipulation, motion_status="unreachable", message=problem)
        if hand and robot.gripper_width() > 0.005:
            robot.open_gripper(0.0)  # press/push with the closed fingertips
        slave = live.scene.objects.get(step.slave or "")
        direction = None
        if slave is not None and live.planned_ms is not None:
            d = self._T_wm(live)[:3, :3] @ (live.planned_ms[-1][:3, 3] - live.planned_ms[0][:3, 3])
            if np.linalg.norm(d) > 1e-6:
                direction = d / np.linalg.norm(d)
                live.before_support = float(np.max(slave.points @ direction))
        transfer = live.skill.manipulation.content_transfer if live.skill.manipulation else None
        master_obj = live.scene.objects.get(step.master or live.skill.master.name)
        contents_before = None
        if transfer is not None and master_obj is not None:
            fresh = self._contents([(master_obj.name, master_obj.T_world_object, master_obj.size)])
            contents_before = baseline(self.memo.contents, master_obj, fresh.get(master_obj.name))
            # the slave is in the hand now: what it held is its reading at the run's clear first look
            slave_before = self.memo.contents.get(step.slave or "")
        r = self._move(live.trajectory, HELD_SPEED)
        ee_end = robot.ee_pose().matrix()
        held_end = None if hand else bool(robot.is_grasping())
        facts = {"phase": Phase.manipulation, "motion_status": r.status.value, "object_held_at_end": held_end,
                 "message": r.message}
        assert live.planned_ms is not None and live.start_ms is not None and live.T_slave_gripper is not None
        master = live.scene.objects[step.master or live.skill.master.name]
        T_ms_end = None
        if hand or held_end:
            T_ms_end = relation(self._T_wm(live), ee_end @ invert_transform(live.T_slave_gripper))
        released = False
        # The plan's next step uses the held object again (carry the brush to the pan, then scrub):
        # it stays in the hand, where this motion left it.
        keep = bool(step.keep_holding) and not hand and bool(held_end)
        if not hand and not keep:
            if self._rests(live):
                robot.open_gripper(0.08)  # the grasp stays remembered: a later step may re-grasp the same way
                released = True
                held = self.memo.held
                part = live.skill.slave is not None and bool(live.skill.slave.parent)
                if held is not None and held.name == step.slave and held.size is not None and not part:
                    self.memo.placed[held.name] = _Placed(ee_end @ invert_transform(held.T_object_gripper),
                                                          held.size, held.points_object)
            self._idle(SETTLE_S)
        if not keep:
            rr = self._move([retreat_pose(Pose.from_matrix(ee_end))], APPROACH_SPEED)
            if not rr.ok:
                facts["message"] = (facts["message"] + f"; retreat {rr.status.value}: {rr.message}").strip("; ")
        part = live.skill.slave is not None and bool(live.skill.slave.parent)
        if T_ms_end is None or (not hand and not held_end) or (not hand and not part and released):
            T_ms_end = self._measure_after(live, direction, placed=released and not part)
        elif part and not hand:
            # the hand's account of a part it held: checked against the view (a grasp can turn about a handle)
            T_ms_end = self._part_seen_after(live, T_ms_end)
        placed = released and not part
        j = judge_motion(live.planned_ms, live.start_ms, T_ms_end, placement=placed,
                         end_tolerance_m=placement_tolerance(master.size) if placed else 0.03,
                         height_tolerance_m=placed_height_tolerance(slave.size if slave is not None else None,
                                                                    master.size),
                         sweep=not placed and is_oscillating_program(live.skill.manipulation.program)
                         if live.skill.manipulation else False)
        facts.update(expected_motion_m=j.expected_motion_m, achieved_motion_m=j.achieved_motion_m,
                     expected_rotation_deg=j.expected_rotation_deg, achieved_rotation_deg=j.achieved_rotation_deg,
                     subgoal_met=j.enough, message=(facts["message"] + "; " + j.message).strip("; "))
        if transfer is not None and master_obj is not None:
            # the arm is out of the view now (the placed slave was measured with it folded away); measured
            # in the frame "before" was, so the difference is what the master gained
            T = contents_before[0] if contents_before is not None else master_obj.T_world_object
            looks = [(master_obj.name, T, master_obj.size)]
            slave_now = self.memo.frames.get(step.slave or "")  # where the slave was seen set down
            if slave_before is not None and slave_now is not None:
                looks.append((slave_now.name, slave_now.T_world_object, slave_now.size))
            readings = self._contents(looks)
            after = readings.get(master_obj.name)
            if after is not None:
                slave_after = readings.get(step.slave or "")
                c = judge_transfer(transfer, None if contents_before is None else contents_before[1], after[1],
                                   master_obj.name,
                                   slave=None if slave_before is None or slave_after is None or slave_now is None
                                   else (slave_before[1], slave_after[1], float(slave_now.size[2])))
                self._event("tool_result", tool="contents", duration_s=0.0, result={
                    "object": master_obj.name, "after": after[1].model_dump(),
                    "before": None if contents_before is None else contents_before[1].model_dump(),
                    "slave_before": None if slave_before is None else slave_before[1].model_dump(),
                    "slave_after": None if slave_after is None else slave_after[1].model_dump()})
                msg = c.pop("message")
                facts.update(c, message=(facts["message"] + "; " + msg).strip("; "))
                if c.get("contents_transferred") is False:
                    facts["subgoal_met"] = False
        return ExecutionFacts(**facts)

    def _contents(self, objects: list[tuple[str, np.ndarray, Any]]) -> dict[str, Reading]:
        """(name, T_world_object, size) -> contents in one fresh frame (remembered when the inside is seen);
        empty when no reading can be taken."""
        if self.ctx.camera is None:
            return {}
        try:
            got = read_contents(self.ctx.camera, self._segmenter(), objects)
        except Exception as e:  # noqa: BLE001 - no reading means no verdict on contents, not a failed step
            self._event("adapter_error", message=f"contents not measured: {type(e).__name__}: {e}")
            return {}
        remember(self.memo.contents, got)
        return got

    def _rests(self, live: _Live) -> bool:
        """Release the slave where the motion ends? Yes for a part (drawer, door, knob) and for an object
        set down on/in the master; no for one still in the air (a cup mid-pour)."""
        skill, step = live.skill, live.step
        if skill.slave is not None and skill.slave.parent:
            return True
        assert live.planned_ms is not None
        master = live.scene.objects[step.master or skill.master.name]
        slave = live.scene.objects.get(step.slave or "")
        sz = float(slave.size[2]) if slave is not None else 0.05
        bottom = float(live.planned_ms[-1][2, 3]) - sz / 2
        return bottom <= float(master.size[2]) / 2 + 0.03
