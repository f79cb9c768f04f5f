"""Headless rendering backend for MuJoCo, chosen before `mujoco` is imported.

MuJoCo picks its OpenGL platform (EGL, OSMesa, GLFW) from the MUJOCO_GL environment variable at
import time, so every sim module imports this module first. Order of choice:

1. MUJOCO_GL, else the `mujoco_gl` setting (VLMIMIC_MUJOCO_GL / vlmimic.toml), if set: honoured as given;
2. otherwise egl, then osmesa, each probed in a subprocess with a short timeout (a broken driver can
   hang or crash the process that creates a context, so it must never be ours);
3. otherwise "none": physics works, rendering is off (``SimWorld(render=False)``).

`require_rendering()` turns "none" into one clear `BackendUnavailable` line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from core.errors import BackendUnavailable
from tools.doctor import Check

NO_RENDER = "none"
_PROBE_ORDER = ("egl", "osmesa")
_PROBE_TIMEOUT_S = 20.0
_PROBE_CODE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom type="sphere" size=".1"/></worldbody></mujoco>')
r = mujoco.Renderer(m, 32, 32)
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r.update_scene(d)
r.render()
r.close()
print("ok")
"""

_backend: str | None = None
_detail: str = ""


def _probe(backend: str, timeout_s: float = _PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Try a tiny offscreen render with `backend` in a child process; (works, reason)."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE], env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False, f"{backend}: probe timed out after {timeout_s:.0f} s"
    if proc.returncode == 0 and "ok" in proc.stdout:
        return True, f"{backend}: ok"
    tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return False, f"{backend}: {tail[:160]}"


def _setting() -> str | None:
    """The `mujoco_gl` setting (VLMIMIC_MUJOCO_GL or vlmimic.toml), None if unset or unreadable."""
    try:
        from core.settings import load_settings

        return load_settings().mujoco_gl
    except Exception:  # a bad settings file is reported by whoever needs settings, not at import here
        return os.environ.get("VLMIMIC_MUJOCO_GL")


def ensure_backend() -> str:
    """Set MUJOCO_GL (once per process) and return the backend: "egl", "osmesa", "glfw" or "none"."""
    global _backend, _detail
    if _backend is not None:
        return _backend
    requested = os.environ.get("MUJOCO_GL") or _setting()
    if requested:
        requested = requested.strip().lower()
        if requested in ("disable", "disabled", "off", "false", "0", NO_RENDER):
            _backend, _detail = NO_RENDER, f"MUJOCO_GL={requested}: rendering disabled by the user"
            os.environ["MUJOCO_GL"] = "disable"
        else:
            _backend, _detail = requested, f"MUJOCO_GL={requested} (set by the user, not probed)"
            os.environ["MUJOCO_GL"] = requested
            if requested in ("egl", "osmesa"):
                os.environ.setdefault("PYOPENGL_PLATFORM", requested)
        return _backend
    reasons = []
    for backend in _PROBE_ORDER:
        ok, why = _probe(backend)
        reasons.append(why)
        if ok:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            _backend, _detail = backend, f"probed: {why}"
            return _backend
    os.environ["MUJOCO_GL"] = "disable"
    _backend, _detail = NO_RENDER, "no working backend (" + "; ".join(reasons) + ")"
    return _backend


def gl_context_class() -> type:
    """The GLContext class of the chosen backend, imported explicitly so that the choice holds even when
    something imported mujoco before this module (mujoco binds its own default at import time)."""
    backend = require_rendering()
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    else:
        from mujoco.glfw import GLContext
    return GLContext


def rendering_available() -> bool:
    return ensure_backend() != NO_RENDER


def require_rendering() -> str:
    """The backend, or one clear error naming MUJOCO_GL and the no-render mode."""
    backend = ensure_backend()
    if backend == NO_RENDER:
        raise BackendUnavailable(
            f"no MuJoCo rendering backend works here ({_detail}); set MUJOCO_GL=egl or osmesa with a working "
            "driver, or use the no-render mode SimWorld(render=False)"
        )
    return backend


def backend_detail() -> str:
    ensure_backend()
    return _detail


def doctor_checks() -> list[Check]:
    """The rendering backend and the measured fps of a small RGB render (640x480), bounded in time."""
    backend = ensure_backend()
    if backend == NO_RENDER:
        return [Check(name="mujoco rendering", status="missing", detail=f"{_detail}; physics only (render=False)")]
    code = (
        "import time, mujoco\n"
        "xml = '<mujoco><visual><global offwidth=\"640\" offheight=\"480\"/></visual><worldbody>"
        "<light pos=\"0 0 2\"/><geom type=\"plane\" size=\"1 1 .1\"/><geom type=\"box\" size=\".1 .1 .1\" "
        "pos=\"0 0 .1\"/></worldbody></mujoco>'\n"
        "m = mujoco.MjModel.from_xml_string(xml); d = mujoco.MjData(m); mujoco.mj_forward(m, d)\n"
        "r = mujoco.Renderer(m, 480, 640)\n"
        "r.update_scene(d); r.render()\n"
        "t = time.perf_counter(); n = 10\n"
        "for _ in range(n):\n    r.update_scene(d); r.render()\n"
        "print(n / (time.perf_counter() - t)); r.close()\n"
    )
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return [Check(name="mujoco rendering", status="error", detail=f"{backend}: render test timed out (30 s)")]
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1][:160]
        return [Check(name="mujoco rendering", status="error", detail=f"{backend}: {tail}")]
    try:
        fps = float(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return [Check(name="mujoco rendering", status="error", detail=f"{backend}: unreadable fps output")]
    return [
        Check(
            name="mujoco rendering",
            status="ok",
            detail=f"MUJOCO_GL={backend}, {fps:.0f} fps RGB at 640x480 (tiny scene; {time.perf_counter() - t0:.1f} s)",
        )
    ]


ensure_backend()
