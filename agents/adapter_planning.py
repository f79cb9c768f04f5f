"""Instantiation of a skill in the perceived scene (used by compare and by review's re-plan): grasp
candidates on the object's material, chosen for the next step's use, and manipulation trajectories
in the master's frame, each checked for reach and collisions."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.adapter_compose import compose_manipulation, free_place_shifts
from agents.adapter_perception import AdapterPerception
from agents.adapter_state import (
    FINGERTIP_BELOW_TCP_M,
    FLOOR_MARGIN_M,
    MIN_MATERIAL_POINTS,
    N_CANDIDATES,
    AdapterState,
    _Held,
    _Live,
)
from agents.reasoning.questions import Revision
from core.errors import VLMimicError
from core.geometry import Pose, invert_transform
from core.grounding import HAND, Phase
from core.skills import Skill
from tools.execution.candidates import (
    GraspPlan,
    centre_between_fingers,
    close_across_section,
    contact_support,
    grasp_candidates,
    is_round,
    match_demo_frame,
    material_between_fingers,
    mirror_grasp_constraint,
    raise_onto_section,
    slides_along_part,
    twist_grasp,
)
from tools.execution.feasibility import (
    PathCheck,
    check_path,
    rank,
)
from tools.execution.verify import returns_to_start
from tools.perception.scene import PerceivedObject

PART_BACK_M = 0.01  # a part this far (or turned PART_BACK_DEG) from where its step began has been moved
PART_BACK_DEG = 5.0
SLIDE_TRIES = 3  # blocked grasps on a part slid along it, best first


class AdapterPlanning(AdapterPerception):
    """Planning the step's instance."""

    # --- instantiation (used by compare and by review's re-plan) ----------------------------------
    def _plan_grasp(self, live: _Live, rev: Revision, excluded: list[list[int]], seed: int) -> str:
        skill, robot = live.skill, self.ctx.robot
        assert skill.grasp is not None
        obj = live.scene.objects[live.step.master or skill.master.name]
        ee = robot.ee_pose().matrix()
        # the learned regions and closing axis are written in the demonstrated object's frame: turn the
        # perceived frame so that its sides correspond to the demonstrated ones (long side to long side)
        T_wo, size = match_demo_frame(obj.T_world_object, obj.size, skill.master.bbox_size)
        free = not skill.master.parent

        def sample(constraint: Any) -> list[GraspPlan]:
            cs = grasp_candidates(constraint, T_wo, size, n=N_CANDIDATES, seed=seed, revision=rev,
                                  exclude=[tuple(e) for e in excluded], prefer_y_world=ee[:3, 1],
                                  edges_world=obj.footprint_edges(), floor_z=self._grasp_floor(live, obj))
            # a part: the fingers on a section as wide as the demonstrated one (a knob's wing, not its hub);
            # a free object: centre the fingers on what they close around
            # (across the part they take: a handle, not at a slant)
            if not free:
                width = float(getattr(constraint, "width", 0.0) or 0.0)
                return [raise_onto_section(c, obj.points, width, min_points=MIN_MATERIAL_POINTS) for c in cs]
            return [centre_between_fingers(close_across_section(c, obj.points), obj.points) for c in cs]

        cands = sample(skill.grasp)
        if not cands:
            live.grasp, live.check = None, None
            return "every grasp cell of the learned regions was tried"
        if free and len(obj.points):
            cands = self._on_material(cands, obj, sample, skill.grasp)
        # a part cannot give way: only the fingers may touch it on the way in
        checker = self._checker(live, [obj.name], fingers_only=[] if free else [obj.name])
        q0 = robot.joint_positions()
        checks = [check_path(c.approach_path(), q0, checker, widths=[0.08, 0.08]) for c in cands]
        if not free and not any(ck.ok for ck in checks):
            width = float(getattr(skill.grasp, "width", 0.0) or 0.0)
            cands, checks = self._slid_clear(cands, checks, obj, width, q0, checker)
        order = rank(checks)
        best = order[0]
        nxt = self._next_use(live)
        if nxt is not None and checks[best].ok:
            # the object is taken in order to be used: prefer a grasp from which the next step's motion
            # is feasible too (a cup must tilt without running the wrist into its limit); a round
            # object may be taken at any twist about the approach
            # (quarter turns: also right for a square block, whose faces the fingers must close on)
            # and any object at either of the two twists of a parallel gripper (the fingers are the same
            # either way; the wrist, 180° apart, is not: one of them may run into its limit while carrying)
            twists = [k * np.pi / 2 for k in range(4)] if is_round(size, T_wo) else [0.0, np.pi]
            tried: list[tuple[float, int, GraspPlan, PathCheck]] = []
            for i in [j for j in order if checks[j].ok]:
                for a in twists:
                    c = twist_grasp(cands[i], a) if a else cands[i]
                    ck = checks[i] if not a else check_path(c.approach_path(), q0, checker, widths=[0.08, 0.08])
                    if not ck.ok:
                        continue
                    use = self._use_check(live, obj, c, nxt, ck)
                    tried.append((use, len(tried), c, ck))
                    if use >= 1.0:
                        break
                if tried and max(t[0] for t in tried) >= 1.0:
                    break
            if tried:
                use, _, g, ck = max(tried, key=lambda t: (t[0], -t[1]))
                self._event("tool_result", tool="adapter", duration_s=0.0,
                            result=f"grasp chosen for the next step ({nxt[1].subtask!r}): its motion "
                                   f"{use:.0%} feasible from this grasp ({len(tried)} grasp(s) looked at)")
                live.grasp, live.check = g, ck
                return ""
        live.grasp, live.check = cands[best], checks[best]
        return "" if checks[best].ok else checks[best].first_problem()

    def _slid_clear(self, cands: list[GraspPlan], checks: list[PathCheck], obj: PerceivedObject, width: float,
                    q0: Any, checker: Any, tries: int = SLIDE_TRIES) -> tuple[list[GraspPlan], list[PathCheck]]:
        """No grasp on a part is clear: the best `tries` of them slid along the part (a bar), nearest
        first; the first clear one is added to the candidates."""
        for i in rank(checks)[:tries]:
            for slid in slides_along_part(cands[i], obj.points, width, min_points=MIN_MATERIAL_POINTS):
                ck = check_path(slid.approach_path(), q0, checker, widths=[0.08, 0.08])
                if ck.ok:
                    d = float(np.linalg.norm(slid.grasp.translation - cands[i].grasp.translation))
                    self._event("tool_result", tool="adapter", duration_s=0.0,
                                result=f"no grasp on {obj.name} was clear ({checks[i].first_problem()}); "
                                       f"slid {d * 100:.1f} cm along the part, it is")
                    return [*cands, slid], [*checks, ck]
        return cands, checks

    def _on_material(self, cands: list[GraspPlan], obj: PerceivedObject, sample: Any, constraint: Any
                     ) -> list[GraspPlan]:
        """Grasps whose fingers close on perceived material like the demonstrated one, those first.

        A grasp fits when enough points lie between its fingers and their extent across the closing
        axis is about the learned opening (a 2 cm handle, not a pan's 5 mm rim beside it). A canonical
        frame fitted to a footprint that is not a box (a pan: a disc and a handle) may come out tilted
        the other way than in the demonstrations, which mirrors where the learned region lies in it:
        when no candidate fits, the regions reflected through the frame's mid-planes are tried and the
        reflection with the best fitting grasps wins (else the one with most material). Among fitting
        grasps, those whose material is closest to the demonstrated opening come first."""
        width = float(getattr(constraint, "width", 0.0) or 0.0)

        def fit(c: GraspPlan) -> tuple[int, int, float]:
            n, extent = material_between_fingers(c, obj.points)
            good = n >= MIN_MATERIAL_POINTS and extent is not None and \
                (width <= 0 or 0.6 * width <= extent <= width + 0.02)
            # then the fingers closing on the width the demos closed on: across a 2 cm handle, not
            # slanting over it (3 cm), where it then pivots in the hand
            like = -abs(extent - width) if extent is not None and width > 0 else 0.0
            return int(good), min(n, MIN_MATERIAL_POINTS), round(like, 3)

        def best(cs: list[GraspPlan]) -> tuple[int, int, float]:
            return max(fit(c) for c in cs)

        top = best(cands)
        if top[0] == 0:
            chosen: tuple[tuple[int, int, float], list[GraspPlan], tuple[int, int]] = (top, cands, (1, 1))
            for sx, sy in ((1, -1), (-1, 1), (-1, -1)):
                alt = sample(mirror_grasp_constraint(constraint, sx, sy))
                if alt and best(alt) > chosen[0]:
                    chosen = (best(alt), alt, (sx, sy))
            if chosen[2] != (1, 1) and chosen[0][1] >= MIN_MATERIAL_POINTS:
                self._event("tool_result", tool="adapter", duration_s=0.0,
                            result=f"no grasp in the learned region closes on the {obj.name} as demonstrated in its "
                                   f"perceived frame; the frame's mirror {chosen[2]} does"
                                   + ("" if chosen[0][0] else " (on the most material, not the demonstrated width)"))
                cands = chosen[1]
        return sorted(cands, key=lambda c: tuple(-v for v in fit(c)))

    def _next_use(self, live: _Live) -> tuple[Any, Skill] | None:
        """The plan's next manipulation that moves the object this grasp takes, with its skill."""
        mem = self.ctx.memory
        if mem is None:
            return None
        try:
            plan = mem.get_plan(live.skill.task)
        except Exception:  # noqa: BLE001 - no look-ahead without a plan
            return None
        if plan is None:
            return None
        names = {live.step.master, live.skill.master.name}
        for ps in plan.steps:
            if ps.index > live.step.index and ps.phase == Phase.manipulation and ps.slave in names:
                sk = mem.get_skill(ps.skill_id) if ps.skill_id else None
                return (ps, sk) if sk is not None and sk.manipulation is not None else None
            if ps.index > live.step.index and ps.phase == Phase.grasping:
                return None
        return None

    def _use_check(self, live: _Live, obj: PerceivedObject, g: GraspPlan, nxt: tuple[Any, Skill],
                   approach: PathCheck) -> float:
        """Share of the next step's gripper poses reachable without collision from grasp g."""
        ps, sk = nxt
        master = self.memo.frames.get(ps.master) or live.scene.objects.get(ps.master)
        if master is None:
            return 0.0
        T_wo = obj.T_world_object
        T_sg = invert_transform(T_wo) @ g.grasp.matrix()
        T_wm, m_size = self._master_frame(sk, master)
        try:
            c = compose_manipulation(sk, T_wm, m_size, T_wo, T_sg, tuple(obj.size),
                                     Revision(), g.grasp.matrix(), slave_round=is_round(obj.size, T_wo))
        except VLMimicError:
            return 0.0
        q = approach.q[-1] if approach.q else self.ctx.robot.joint_positions()
        ck = check_path(c.poses, q, self._checker(live, [obj.name, master.name], hand_only=[master.name]),
                        widths=g.width)
        return float(ck.score)

    def _master_frame(self, skill: Skill, master: PerceivedObject) -> tuple[np.ndarray, tuple[float, float, float]]:
        """The master's frame and size the skill's program is written in, read off the perceived one.

        A free master's canonical frame may come out with its sides swapped against the demonstrated
        one (a pan's footprint, a disc and a handle, has no clear long side), which stretches and turns
        a program written in bbox fractions: the frame is turned to match the demonstrated sides, and
        of it and its half turn the one that puts the demonstrated contact (the keypoints that lay over
        the demonstrated master) over the perceived master's surface wins (the side of a pan its disc
        is on; `contact_support`: the surface must fill the ground around each contact, so a pan's
        handle under a scrub does not pass for its floor). Parts of fixtures and round masters keep the
        perceived frame."""
        T = master.T_world_object
        size = tuple(float(v) for v in master.size)
        m = skill.manipulation
        part = skill.slave is not None and bool(skill.slave.parent)
        if skill.master.parent or part or m is None or is_round(master.size, T):
            return T, size  # type: ignore[return-value]
        T1, size1 = match_demo_frame(T, master.size, skill.master.bbox_size)
        demo = np.array([p.position for p in m.keypoints], dtype=float).reshape(-1, 3)
        d_size = np.maximum(np.asarray(skill.master.bbox_size, dtype=float), 1e-6)
        over = demo[np.all(np.abs(demo[:, :2] / d_size[:2]) <= 0.5, axis=1)] / d_size if len(demo) else demo
        if len(over) == 0 or len(master.points) == 0:
            return T1, size1
        surface = np.asarray(master.points, dtype=float)[:, :2]
        half = np.diag([-1.0, -1.0, 1.0, 1.0])

        def score(Tv: np.ndarray) -> float:
            world = (Tv[:3, :3] @ (over * np.asarray(size1)).T).T + Tv[:3, 3]
            return contact_support(surface, world[:, :2])

        s0, s1 = score(T1), score(T1 @ half)
        if s1 > s0 + 0.2:
            self._event("tool_result", tool="adapter", duration_s=0.0,
                        result=f"the {master.name}'s frame turned half a turn: the demonstrated contact lies over it "
                               f"{s1:.0%} (vs {s0:.0%})")
            return T1 @ half, size1
        return T1, size1

    def _grasp_floor(self, live: _Live, obj: PerceivedObject) -> float | None:
        """The lowest TCP height for grasping a free object from above: the lowest point seen on it
        (where it stands) plus the fingertips' reach below the TCP and a margin. None for a part of
        a fixture (a handle may sit low on purpose) or an unseen cloud."""
        if live.skill.master.parent or len(obj.points) == 0:
            return None
        return float(np.min(obj.points[:, 2])) + FINGERTIP_BELOW_TCP_M + FLOOR_MARGIN_M

    def _plan_manipulation(self, live: _Live, rev: Revision) -> str:
        skill, robot = live.skill, self.ctx.robot
        assert skill.manipulation is not None
        step = live.step
        master = live.scene.objects[step.master or skill.master.name]
        T_wm = master.T_world_object
        ee = robot.ee_pose().matrix()
        if step.slave in (None, HAND):
            # nothing held: the hand travels freely to where the demonstrated motion began
            T_sg = np.eye(4)
            T_ws = None
            slave_size = skill.slave.bbox_size if skill.slave else (0.08, 0.02, 0.1)
        else:
            held = self.memo.held
            if held is None or held.name != step.slave:
                if step.slave in live.scene.objects and robot.is_grasping():
                    obj = live.scene.objects[step.slave]
                    held = _Held(name=step.slave, T_object_gripper=invert_transform(obj.T_world_object) @ ee,
                                 T_world_object=obj.T_world_object)
                    self.memo.held = held
                else:
                    return f"the step needs the {step.slave} in the gripper, and the adapter has not grasped it"
            T_sg = held.T_object_gripper
            T_ws = ee @ invert_transform(T_sg)
            # its size as seen when it was grasped: in the hand, the fingers and the arm hide part of it
            # (a brush held by its handle looks half as tall), and the program's heights scale with it
            slave_obj = live.scene.objects.get(step.slave)
            slave_size = held.size if held.size is not None else \
                tuple(slave_obj.size) if slave_obj is not None else skill.slave.bbox_size  # type: ignore[union-attr]
        slave_round = T_ws is not None and step.slave in live.scene.objects \
            and is_round(np.asarray(slave_size, dtype=float), T_ws)
        T_wm0, m_size = self._master_frame(skill, master)
        T_sg0 = T_sg
        c = compose_manipulation(skill, T_wm0, m_size, T_ws, T_sg, tuple(slave_size),
                                 rev, ee, slave_round=slave_round)
        part = skill.slave is not None and bool(skill.slave.parent)
        if part and c.T_ms0 is not None:
            if live.origin_ms is None:
                live.origin_ms = c.T_ms0.copy()
            else:
                off_m, off_rad = Pose.from_matrix(live.origin_ms).distance_to(Pose.from_matrix(c.T_ms0))
                off_deg = float(np.rad2deg(off_rad))
                if returns_to_start(c.Ts) and (off_m > PART_BACK_M or off_deg > PART_BACK_DEG):
                    # a motion there and back (a faucet's handle on and off again) must end where its step
                    # began: an attempt that left the part elsewhere (a knob stuck half open) is retried from
                    # there, the path first bringing the part back, not from where it stopped
                    c = compose_manipulation(skill, T_wm0, m_size, T_ws, T_sg, tuple(slave_size), rev, ee,
                                             slave_round=slave_round, T_ms_from=live.origin_ms)
                    self._event("tool_result", tool="adapter", duration_s=0.0,
                                result=f"the {step.slave} stands {off_m * 100:.1f} cm and {off_deg:.0f} deg from "
                                       "where the step began: the motion there and back starts by bringing it back")
        T_wm, Ts, T_ms0, T_sg, poses = c.T_wm, c.Ts, c.T_ms0, c.T_sg, c.poses
        live.T_wm = T_wm
        # the adapted constraint's shape, from its learned start (what the compare looks at)
        live.shape_ms = c.shape_ms
        live.shape_args = ({"master": m_size, "slave": tuple(slave_size)}, rev)
        allowed = [n for n in (step.master, step.slave) if n and n != HAND]
        # the master may be touched by the hand (a door's handle, a plate under the fruit), not by the arm
        checker = self._checker(live, allowed, hand_only=[step.master or skill.master.name])
        width = float(robot.gripper_width())
        live.check = check_path(poses, robot.joint_positions(), checker, widths=width)
        spread = skill.manipulation.free_place_spread_m
        if not live.check.ok and T_ws is not None and spread:
            # a put-down at a free place (the demos chose places `spread` apart): where the mean place is out
            # of reach, a place nearer the arm serves as well
            for shift in free_place_shifts(np.asarray(poses[-1].position, dtype=float), spread):
                T_try = T_wm0.copy()
                T_try[:3, 3] += shift
                c2 = compose_manipulation(skill, T_try, m_size, T_ws, T_sg0, tuple(slave_size), rev, ee,
                                          slave_round=slave_round)
                ck = check_path(c2.poses, robot.joint_positions(), checker, widths=width)
                if ck.ok:
                    c, live.check = c2, ck
                    T_wm, Ts, T_ms0, T_sg, poses = c.T_wm, c.Ts, c.T_ms0, c.T_sg, c.poses
                    live.T_wm = T_wm
                    self._event("tool_result", tool="adapter", duration_s=0.0,
                                result=f"the demonstrated place is out of reach; putting the {step.slave} down "
                                f"{np.linalg.norm(shift) * 100:.0f} cm nearer the arm (a free place: the demos' "
                                f"places spread {spread * 100:.0f} cm)")
                    break
        live.trajectory, live.planned_ms, live.start_ms, live.T_slave_gripper = poses, Ts, T_ms0, T_sg
        return "" if live.check.ok else live.check.first_problem()

    def _plan(self, live: _Live, state: AdapterState, rev: Revision, excluded: list[list[int]]) -> str:
        try:
            if live.skill.phase == Phase.grasping:
                return self._plan_grasp(live, rev, excluded, seed=int(state["step"]["index"]))
            return self._plan_manipulation(live, rev)
        except VLMimicError as e:
            live.check = None
            return str(e)
