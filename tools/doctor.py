"""`python main.py doctor`: which optional components work on this machine, each check bounded in time.

Checks never contact anything that the user did not configure: without a robot address the robot is
reported as "not configured" and nothing is contacted.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

Status = Literal["ok", "missing", "not configured", "error"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str = ""


def bounded(name: str, fn: Callable[[], Check | list[Check]], timeout_s: float) -> list[Check]:
    """Run one check in a worker thread; a hang or a crash becomes an "error" Check, never an exception."""
    from core.errors import VLMimicError
    from tools.robot.connectivity import DeadlineExceeded, call_with_deadline

    try:
        out = call_with_deadline(fn, timeout_s, name)
    except DeadlineExceeded:
        return [Check(name=name, status="error", detail=f"check did not finish within {timeout_s:g} s")]
    except VLMimicError as e:
        return [Check(name=name, status="error", detail=str(e))]
    except Exception as e:  # noqa: BLE001 - a doctor reports, it does not crash
        return [Check(name=name, status="error", detail=f"{type(e).__name__}: {e}".splitlines()[0][:200])]
    return out if isinstance(out, list) else [out]


def _check_panda_py() -> Check:
    try:
        pp = importlib.import_module("panda_py")
    except ImportError:
        return Check(name="panda-py", status="missing", detail="real Panda support: pip install -e .[real]")
    from tools.robot.panda import bundled_libfranka_version

    lib = bundled_libfranka_version()
    detail = f"panda-py {getattr(pp, '__version__', '?')}, bundled libfranka {lib or 'unknown'}"
    if lib == "0.9.2":
        detail += " (Panda/FER system 4.2.x; FR3 needs another build: README, Running on a real Panda)"
    return Check(name="panda-py", status="ok", detail=detail)


def _check_robot(host: str | None, timeout_s: float) -> Check:
    if not host:
        return Check(name="robot", status="not configured",
                     detail="no address (--panda-host or VLMIMIC_HARDWARE__PANDA_HOST); nothing contacted")
    from tools.robot.connectivity import FCI_PORT, probe_tcp

    probe = probe_tcp(host, FCI_PORT, timeout_s=timeout_s)
    if probe.ok:
        return Check(name="robot", status="ok", detail=f"{probe.message} ({probe.latency_s * 1000:.0f} ms)")
    return Check(name="robot", status="error", detail=f"{probe.message}; is FCI activated in Desk?")


def _check_realsense(serial: str | None) -> Check:
    try:
        importlib.import_module("pyrealsense2")
    except ImportError:
        return Check(name="realsense", status="missing", detail="pyrealsense2 not installed")
    from tools.robot.realsense import list_devices

    devices = list_devices(timeout_s=3.0)
    if not devices:
        return Check(name="realsense", status="missing", detail="pyrealsense2 ok; no camera connected")
    serials = [d["serial"] for d in devices]
    if serial and serial not in serials:
        return Check(name="realsense", status="error",
                     detail=f"hardware.realsense_serial={serial} not connected; found {', '.join(serials)}")
    return Check(name="realsense", status="ok",
                 detail="; ".join(f"{d['name']} ({d['serial']})" for d in devices))


def _check_calibration(settings: Any) -> Check:
    from tools.robot.realsense import calibrated_T_world_camera

    T = calibrated_T_world_camera(settings)
    if T is None:
        return Check(name="camera calibration", status="not configured",
                     detail="no hardware.T_base_camera: run `python main.py calibrate` before using a real camera")
    x, y, z = T[:3, 3]
    return Check(name="camera calibration", status="ok", detail=f"camera at ({x:.3f}, {y:.3f}, {z:.3f}) m in base")


def _check_weights(settings: Any) -> list[Check]:
    out = []
    for field, what in (("grounding_dino_path", "Grounding DINO"), ("sam_path", "SAM"),
                        ("mediapipe_model_path", "MediaPipe hand landmarker")):
        path = getattr(settings.perception, field)
        env = f"VLMIMIC_PERCEPTION__{field.upper()}"
        if path is None:
            out.append(Check(name=f"weights: {what}", status="not configured", detail=f"optional; set {env}"))
        elif Path(path).exists():
            out.append(Check(name=f"weights: {what}", status="ok", detail=str(path)))
        else:
            out.append(Check(name=f"weights: {what}", status="error", detail=f"{path} does not exist ({env})"))
    return out


def _check_llm(settings: Any) -> Check:
    has_key = bool(os.environ.get("OPENAI_API_KEY"))
    base = os.environ.get("OPENAI_BASE_URL")
    shown = None
    if base:
        u = urlsplit(base)
        shown = urlunsplit((u.scheme, u.hostname or "", u.path, "", "")) if u.hostname else "(unparseable URL)"
        if u.port:
            shown = urlunsplit((u.scheme, f"{u.hostname}:{u.port}", u.path, "", ""))
    if not has_key and not base:
        return Check(name="llm endpoint", status="not configured",
                     detail="set OPENAI_API_KEY (and OPENAI_BASE_URL for vLLM/Ollama) for --reasoner llm")
    where = shown or "api.openai.com (default)"
    key = "API key set" if has_key else "no API key (fine for local servers)"
    return Check(name="llm endpoint", status="ok", detail=f"{where}, model {settings.llm.model}, {key}")


def run_checks(robot: str = "sim", panda_host: str | None = None, timeout_s: float = 5.0) -> list[Check]:
    """Hardware, weights and LLM checks; each bounded by `timeout_s`. Contacts only a configured robot
    address (`panda_host`, else settings.hardware.panda_host); never prints secrets."""
    from core.errors import ConfigError
    from core.settings import load_settings

    try:
        settings = load_settings()
    except ConfigError as e:
        return [Check(name="settings", status="error", detail=str(e))]
    host = panda_host or settings.hardware.panda_host
    checks = [
        *bounded("panda-py", _check_panda_py, timeout_s + 10.0),  # the first import can be slow
        *bounded("robot", lambda: _check_robot(host, min(timeout_s, settings.hardware.connect_timeout_s)),
                  timeout_s + 1.0),
        *bounded("realsense", lambda: _check_realsense(settings.hardware.realsense_serial), timeout_s + 10.0),
        *bounded("camera calibration", lambda: _check_calibration(settings), timeout_s),
        *bounded("perception weights", lambda: _check_weights(settings), timeout_s),
        *bounded("llm endpoint", lambda: _check_llm(settings), timeout_s),
    ]
    if robot == "panda" and not host:
        for c in checks:
            if c.name == "robot":
                c.status = "error"
                c.detail = "--robot panda needs an address: --panda-host or VLMIMIC_HARDWARE__PANDA_HOST"
    return checks
