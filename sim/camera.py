"""`SimCamera`: the MuJoCo implementation of tools.robot.protocols.Camera.

A capture renders twice with one reused GL context per world: a colour pass (RGB + depth read
together) and an ID-colour pass for segmentation. MuJoCo cameras look along -z with y up; poses
are converted here to the OpenCV optical frame (x right, y down, z forward).
"""

from __future__ import annotations

import sim.render  # noqa: F401  (chooses MUJOCO_GL before mujoco is imported)

# isort: split

import atexit
import weakref
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from core.errors import BackendUnavailable
from core.sensing import Intrinsics, RGBDFrame

if TYPE_CHECKING:
    from sim.world import SimWorld

_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])
_LIVE: weakref.WeakSet[_Renderer] = weakref.WeakSet()
_atexit_registered = False


def _close_all() -> None:
    """Free every live GL context before the EGL/OSMesa display is torn down at exit."""
    for renderer in list(_LIVE):
        try:
            renderer.close()
        except Exception:
            pass


class _Renderer:
    """Offscreen renderer owning one GL context, scene and MjrContext (close() frees them)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int) -> None:
        self.model = model
        self.width, self.height = width, height
        self._gl = None
        self._ctx = None
        backend = sim.render.require_rendering()
        try:
            self._gl = sim.render.gl_context_class()(width, height)
            self._gl.make_current()
            self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        except Exception as e:  # a broken driver surfaces here, whatever its exception type
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise BackendUnavailable(
                f"MUJOCO_GL={backend}: could not create an OpenGL context ({first}); set MUJOCO_GL to a "
                "working backend (egl, osmesa) or use the no-render mode SimWorld(render=False)"
            ) from e
        global _atexit_registered
        if not _atexit_registered:  # registered after the platform's own exit hook, so it runs first
            atexit.register(_close_all)
            _atexit_registered = True
        _LIVE.add(self)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=max(1000, 4 * model.ngeom))
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX, mujoco.mjtRndFlag.mjRND_FOG):
            self._scene.flags[flag] = False
        self._opt = mujoco.MjvOption()
        self._opt.sitegroup[:] = 0  # sites (the TCP marker, keypoints) are bookkeeping, not scenery
        self._pert = mujoco.MjvPerturb()
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), dtype=np.uint8)
        self._ids = np.empty((height, width, 3), dtype=np.uint8)
        self._depth = np.empty((height, width), dtype=np.float32)
        extent = model.stat.extent
        self.near = float(model.vis.map.znear * extent)
        self.far = float(model.vis.map.zfar * extent)
        zn, zf = np.float32(self.near), np.float32(self.far)
        # Reversed-Z perspective depth -> metric depth (as mujoco.Renderer does it).
        c = -(zf + zn) / (zf - zn)
        d = -(np.float32(2) * zf * zn) / (zf - zn)
        self._c = float(np.float32(-0.5) * c - np.float32(0.5))
        self._d = float(np.float32(-0.5) * d)

    def render(
        self, data: mujoco.MjData, cam_id: int, geom_label: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(rgb uint8 HxWx3, depth float32 metres with 0 at background, label ids int32 or None)."""
        if self._ctx is None:
            raise RuntimeError("renderer is closed")
        self._gl.make_current()
        self._cam.fixedcamid = cam_id
        mujoco.mjv_updateScene(
            self.model, data, self._opt, self._pert, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene
        )
        mujoco.mjr_render(self._rect, self._scene, self._ctx)
        mujoco.mjr_readPixels(self._rgb, self._depth, self._rect, self._ctx)
        rgb = np.flipud(self._rgb).copy()
        raw = np.flipud(self._depth)
        depth = np.float32(self._d) / (raw + np.float32(self._c))  # float32 is exact to < 1 um here
        depth[(raw <= 0.0) | (depth >= self.far * 0.999)] = 0.0
        seg = None
        if geom_label is not None:
            self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
            self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
            try:
                mujoco.mjr_render(self._rect, self._scene, self._ctx)
                mujoco.mjr_readPixels(self._ids, None, self._rect, self._ctx)
            finally:
                self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = False
                self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = False
            ids = np.flipud(self._ids)
            code = ids[..., 0].astype(np.int32)
            if ids[..., 1:].any():
                code |= (ids[..., 1].astype(np.int32) << 8) | (ids[..., 2].astype(np.int32) << 16)
            n = self._scene.ngeom
            lut = np.zeros(n + 2, dtype=np.int32)
            for i in range(n):
                g = self._scene.geoms[i]
                if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM and 0 <= g.objid < len(geom_label):
                    lut[min(g.segid + 1, n + 1)] = geom_label[g.objid]
            seg = lut[np.clip(code, 0, n + 1)]
        return rgb, depth.astype(np.float32, copy=False), seg

    def close(self) -> None:
        if self._ctx is not None:
            self._gl.make_current()
            self._ctx.free()
            self._ctx = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None


class SimCamera:
    """A fixed (or body-mounted) MuJoCo camera of a SimWorld, as an aligned RGB-D camera."""

    def __init__(self, world: SimWorld, name: str) -> None:
        self.world = world
        self.name = name
        self.cam_id = mujoco.mj_name2id(world.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if self.cam_id < 0:
            raise ValueError(f"no camera named {name!r}")

    def intrinsics(self) -> Intrinsics:
        fovy = float(self.world.model.cam_fovy[self.cam_id])
        return Intrinsics.from_fovy(self.world.width, self.world.height, fovy)

    def T_world_camera(self) -> np.ndarray:
        """4x4 pose of the OpenCV optical frame (x right, y down, z forward) in the world."""
        d = self.world.data
        T = np.eye(4)
        T[:3, :3] = d.cam_xmat[self.cam_id].reshape(3, 3) @ _MJ_TO_CV
        T[:3, 3] = d.cam_xpos[self.cam_id]
        return T

    def capture(self, segmentation: bool = True) -> RGBDFrame:
        """Render the current state: rgb, metric depth (0 = background), label ids and names."""
        renderer = self.world._get_renderer()
        rgb, depth, seg = renderer.render(
            self.world.data, self.cam_id, self.world.geom_label if segmentation else None
        )
        return RGBDFrame(
            rgb=rgb,
            depth=depth,
            intrinsics=self.intrinsics(),
            T_world_camera=self.T_world_camera(),
            timestamp=self.world.time,
            segmentation=seg,
            labels=dict(self.world.labels) if seg is not None else None,
        )

    def close(self) -> None:
        """Nothing to free per camera: the world owns the renderer (SimWorld.close())."""
