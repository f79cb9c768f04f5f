"""Ground truth while a demo is recorded (ground_truth.json; read only by bench/ and accuracy tests).

Per frame the world pose of every labelled body and the value of every hinge/slide joint inside
labelled bodies; contact events between different labelled bodies (debounced over
CONTACT_DEBOUNCE_FRAMES frames).
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim.world import SimWorld

CONTACT_DEBOUNCE_FRAMES = 2

def _body_labels(model: mujoco.MjModel, labels: list[str]) -> np.ndarray:
    """Per body: index into `labels` of its nearest labelled ancestor (itself included), else -1."""
    out = np.full(model.nbody, -1, dtype=np.int32)
    index = {n: i for i, n in enumerate(labels)}
    for b in range(model.nbody):
        i = b
        while i > 0:
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, i) or ""
            if name in index:
                out[b] = index[name]
                break
            i = int(model.body_parentid[i])
    return out


class _GroundTruth:
    """Collects body poses, articulation values and debounced contact events while recording."""

    def __init__(self, world: SimWorld, labels: list[str]) -> None:
        self.world = world
        m = world.model
        self.body_ids = [world.body_id(n) for n in labels]
        self.geom_label = _body_labels(m, labels)[m.geom_bodyid]
        self.labels = [*labels, "hand"]  # hand pads touching moving parts (pressing demonstrations)
        self.geom_label[world.geom_label == world.label_ids["hand"]] = len(labels)
        self.joints = []
        body_lab = _body_labels(m, labels)
        for j in range(m.njnt):
            if int(m.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                if body_lab[m.jnt_bodyid[j]] >= 0:
                    self.joints.append((mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}",
                                        int(m.jnt_qposadr[j])))
        self.frames: list[dict] = []
        self.events: list[dict] = []
        self._seen: set[tuple[str, str]] = set()  # pairs touching since the last frame
        self._state: dict[tuple[str, str], bool] = {}
        self._streak: dict[tuple[str, str], int] = {}
        self._pending_start: dict[tuple[str, str], tuple[int, float]] = {}

    def sample_contacts(self) -> None:
        d = self.world.data
        n = d.ncon
        if n == 0:
            return
        g1 = self.geom_label[d.contact.geom1[:n]]
        g2 = self.geom_label[d.contact.geom2[:n]]
        mask = (g1 >= 0) & (g2 >= 0) & (g1 != g2) & (d.contact.dist[:n] <= 0.0)
        for a, b in zip(g1[mask], g2[mask], strict=True):
            na, nb = self.labels[a], self.labels[b]
            self._seen.add((na, nb) if (na < nb or na == "hand") and nb != "hand" else (nb, na))

    def hand_event(self, frame: int, time: float, kind: str, target: str) -> None:
        self.events.append({"frame": frame, "time": round(time, 6), "kind": kind, "a": "hand", "b": target})

    def record_frame(self, i: int, time: float) -> None:
        d = self.world.data
        bodies = {}
        for name, b in zip(self.labels[:-1], self.body_ids, strict=True):
            w, x, y, z = d.xquat[b]
            bodies[name] = {"position": [float(v) for v in d.xpos[b]], "quaternion": [float(x), float(y), float(z),
                                                                                       float(w)]}
        joints = {name: float(d.qpos[adr]) for name, adr in self.joints}
        self.frames.append({"frame": i, "time": round(time, 6), "bodies": bodies, "joints": joints})
        # Debounce: a pair changes state only after CONTACT_DEBOUNCE_FRAMES consistent frames; the event is
        # stamped at the first frame of the new state.
        for pair in set(self._state) | self._seen:
            now = pair in self._seen
            if self._state.get(pair, False) == now:
                self._streak.pop(pair, None)
                self._pending_start.pop(pair, None)
                continue
            self._streak[pair] = self._streak.get(pair, 0) + 1
            self._pending_start.setdefault(pair, (i, time))
            if self._streak[pair] >= CONTACT_DEBOUNCE_FRAMES or (i == 0 and now):
                f0, t0 = self._pending_start.pop(pair)
                self._streak.pop(pair, None)
                self._state[pair] = now
                self.events.append({"frame": f0, "time": round(t0, 6), "kind": "begin" if now else "end",
                                    "a": pair[0], "b": pair[1]})
        self._seen = set()

    def result(self, extra: dict) -> dict:
        events = sorted(self.events, key=lambda e: (e["frame"], e["kind"] != "end", e["a"], e["b"]))
        return {**extra, "labels": self.labels[:-1], "joints": [n for n, _ in self.joints], "frames": self.frames,
                "contacts": events}


# --- recording ---------------------------------------------------------------------------------------
