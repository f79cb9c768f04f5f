"""The run record: `runs/<id>/` with trace.jsonl, images the reasoner saw, frames, summary and video.

Layout of a run folder (all written by `Tracer`, read back by `agents.runs`):

    run.json             RunConfig: goal, scene, variant, seed, reasoner, robot, camera, options
    trace.jsonl          one JSON object per line, appended and flushed as things happen:
                         {"t": seconds since the run started, "wall": unix time, "kind": ..., ...}
                         kinds: run_start, node_start, node_end, reasoner_call, tool_call, tool_result,
                         robot_command, approval, say, step_start, step_end, error, run_end
    images/              copies of the images the reasoner was shown (reasoner_call.images names them)
    frames/000000.jpg    frames the simulated camera captured during execution
    execution.mp4        (or .gif) assembled from frames/ at the end of the run
    checkpoints.sqlite   LangGraph SqliteSaver (one thread per run: thread_id = run id)
    summary.json         RunSummary: goal, outcome per step and per subgoal, timings, reasoner calls, tokens

Secrets never reach the disk: every string written goes through `scrub()`, which removes the values
of environment variables whose names look secret (…KEY, …TOKEN, …SECRET, …PASSWORD), bearer tokens
and `sk-…` style API keys, and drops dict entries whose key names a secret (api_key, authorization…).

The tracer of the current run is reachable through `current_tracer()` (a context variable), so code
deep inside an agent (a reasoner, a tool) can record without having it passed down.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

TRACE_FILE = "trace.jsonl"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoints.sqlite"
IMAGES_DIR = "images"
FRAMES_DIR = "frames"
VIDEO_MP4 = "execution.mp4"
VIDEO_GIF = "execution.gif"

_SECRET_NAME = re.compile(r"(api[_-]?key|secret|token|password|passwd|authorization|credential)", re.I)
_SECRET_VALUE = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})")
REDACTED = "[redacted]"


def _secret_env_values() -> list[str]:
    vals = []
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name) and value and len(value) >= 6:
            vals.append(value)
    return sorted(set(vals), key=len, reverse=True)


def scrub(obj: Any, _secrets: list[str] | None = None) -> Any:
    """A JSON-able copy of `obj` with secrets removed (see the module docstring)."""
    secrets = _secret_env_values() if _secrets is None else _secrets
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, str):
        for s in secrets:
            obj = obj.replace(s, REDACTED)
        return _SECRET_VALUE.sub(REDACTED, obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            key = str(k)
            if _SECRET_NAME.search(key) and not key.endswith("tokens") and key not in {"tokens", "token_count"}:
                out[key] = REDACTED
            else:
                out[key] = scrub(v, secrets)
        return out
    if isinstance(obj, list | tuple | set):
        return [scrub(v, secrets) for v in obj]
    if isinstance(obj, np.ndarray):
        return scrub(obj.tolist() if obj.size <= 64 else f"<array {obj.shape} {obj.dtype}>", secrets)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return scrub(str(obj), secrets)
    if obj is None or isinstance(obj, bool | int | float):
        return obj
    return scrub(repr(obj), secrets)


class ReasonerCallRecord(BaseModel):
    """What the trace keeps of one reasoner call (mirrors agents.reasoning's ReasonerCall)."""

    question: str
    input: Any = None
    answer: Any = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_s: float = 0.0
    images: list[str] = Field(default_factory=list)
    reasoner: str = ""
    error: str | None = None


class StepSummary(BaseModel):
    index: int
    text: str
    skill_id: str | None = None
    status: str = "pending"
    adapt_rounds: int = 0
    review_rounds: int = 0
    duration_s: float = 0.0
    message: str = ""


class RunSummary(BaseModel):
    run_id: str
    goal: str
    scene: str | None = None
    variant: str | None = None
    seed: int | None = None
    reasoner: str = ""
    robot: str = ""
    status: str = Field("running", description="running | finished | error | interrupted")
    outcome: str | None = Field(None, description="achieved | not_achieved | needs_demos | refused | error")
    achieved: bool = False
    message: str = ""
    steps: list[StepSummary] = Field(default_factory=list)
    subgoals: dict[str, bool] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict)
    reasoner_calls: int = 0
    tokens: dict[str, int] = Field(default_factory=dict)
    video: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class Tracer:
    """Appends events to `runs/<id>/trace.jsonl` (safe to reopen on resume: it appends)."""

    def __init__(self, run_dir: Path, *, frame_every_s: float = 0.1) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / IMAGES_DIR).mkdir(exist_ok=True)
        self.path = self.run_dir / TRACE_FILE
        self._lock = threading.Lock()
        self._t0 = time.time()
        prior = _read_first_wall(self.path)
        if prior is not None:
            self._t0 = prior
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._frame_dir = self.run_dir / FRAMES_DIR
        self._n_frames = len(list(self._frame_dir.glob("*.jpg"))) if self._frame_dir.is_dir() else 0
        self._last_frame_t = -1e9
        self.frame_every_s = frame_every_s
        self.listeners: list[Any] = []  # callables(event: dict) -> None, e.g. the live progress view

    # --- events -------------------------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> dict:
        now = time.time()
        ev = {"t": round(now - self._t0, 4), "wall": round(now, 4), "kind": kind, **fields}
        ev = scrub(ev)
        line = json.dumps(ev, ensure_ascii=False)
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line + "\n")
                self._fh.flush()
        for listener in list(self.listeners):
            try:
                listener(ev)
            except Exception:  # noqa: BLE001 - a broken view must not break the run
                pass
        return ev

    def say(self, agent: str, text: str) -> None:
        """Something an agent tells the user (shown live and kept in the trace)."""
        self.event("say", agent=agent, text=text)

    @contextmanager
    def node(self, name: str, **fields: Any) -> Iterator[None]:
        start = time.time()
        self.event("node_start", node=name, **fields)
        try:
            yield
        except BaseException as e:
            if type(e).__name__ in {"GraphInterrupt", "NodeInterrupt"}:
                self.event("node_end", node=name, status="interrupted", duration_s=round(time.time() - start, 4))
            else:
                self.event("node_end", node=name, status="error", error=f"{type(e).__name__}: {e}",
                           duration_s=round(time.time() - start, 4))
            raise
        self.event("node_end", node=name, status="ok", duration_s=round(time.time() - start, 4))

    def tool(self, name: str, args: dict[str, Any], result: Any, duration_s: float) -> None:
        self.event("tool_call", tool=name, args=args)
        self.event("tool_result", tool=name, result=result, duration_s=round(duration_s, 4))

    def robot_command(self, command: str, result: Any = None, duration_s: float = 0.0, **args: Any) -> None:
        self.event("robot_command", command=command, args=args, result=result, duration_s=round(duration_s, 4))

    def reasoner_call(self, record: Any) -> dict:
        """Record one reasoner call: a ReasonerCall (any pydantic model/dict with the same fields)."""
        data = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
        usage = data.pop("tokens", None)
        if isinstance(usage, dict):
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                data.setdefault(k, int(usage.get(k, 0) or 0))
            data.setdefault("prompt_tokens", int(usage.get("input_tokens", 0) or 0))
            data.setdefault("completion_tokens", int(usage.get("output_tokens", 0) or 0))
        elif isinstance(usage, int | float):
            data.setdefault("total_tokens", int(usage))
        if "latency" in data and "latency_s" not in data:
            data["latency_s"] = data.pop("latency")
        if not data.get("total_tokens"):
            data["total_tokens"] = int(data.get("prompt_tokens", 0) or 0) + int(data.get("completion_tokens", 0) or 0)
        images = [str(p) for p in (data.get("images") or data.get("image_paths") or [])]
        data.pop("image_paths", None)
        data["images"] = [self.keep_image(Path(p)) for p in images]
        rec = ReasonerCallRecord.model_validate({k: v for k, v in data.items() if k in ReasonerCallRecord.model_fields})
        return self.event("reasoner_call", **rec.model_dump(mode="json"))

    def keep_image(self, path: Path) -> str:
        """Copy an image the reasoner saw into images/; returns its path relative to the run folder."""
        path = Path(path)
        if not path.is_file():
            return str(path)
        images = self.run_dir / IMAGES_DIR
        if images.resolve() in path.resolve().parents:
            return str(path.resolve().relative_to(self.run_dir.resolve()))
        n = len(list(images.iterdir()))
        target = images / f"{n:04d}_{path.name}"
        shutil.copyfile(path, target)
        return str(target.relative_to(self.run_dir))

    # --- frames and video ----------------------------------------------------------------------

    def add_frame(self, rgb: np.ndarray, sim_time: float | None = None, force: bool = False) -> bool:
        """Keep one execution frame (rate-limited to one per `frame_every_s` of sim or wall time)."""
        t = time.time() if sim_time is None else float(sim_time)
        if not force and t - self._last_frame_t < self.frame_every_s and t >= self._last_frame_t:
            return False
        self._last_frame_t = t
        import cv2

        self._frame_dir.mkdir(exist_ok=True)
        path = self._frame_dir / f"{self._n_frames:06d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(np.asarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 85])
        self._n_frames += 1
        return True

    @property
    def n_frames(self) -> int:
        return self._n_frames

    def write_video(self, fps: float = 10.0) -> Path | None:
        """Assemble frames/ into execution.mp4 (imageio-ffmpeg), or a GIF when ffmpeg is unusable."""
        frames = sorted(self._frame_dir.glob("*.jpg")) if self._frame_dir.is_dir() else []
        if not frames:
            return None
        import imageio.v2 as iio

        mp4 = self.run_dir / VIDEO_MP4
        tmp = self.run_dir / f".{VIDEO_MP4}.partial.mp4"
        try:
            writer = iio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=8, quality=6,
                                    ffmpeg_log_level="error")
            try:
                for f in frames:
                    writer.append_data(iio.imread(f))
            finally:
                writer.close()
            os.replace(tmp, mp4)
            return mp4
        except Exception:  # noqa: BLE001 - fall back to a GIF
            tmp.unlink(missing_ok=True)
            gif = self.run_dir / VIDEO_GIF
            iio.mimsave(gif, [iio.imread(f) for f in frames[::2]], duration=2.0 / fps)
            return gif

    # --- files ---------------------------------------------------------------------------------

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.run_dir / name
        data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
        _atomic_write_text(path, json.dumps(scrub(data), indent=1))
        return path

    def write_summary(self, summary: RunSummary) -> Path:
        return self.write_json(SUMMARY_FILE, summary)

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _read_first_wall(path: Path) -> float | None:
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
        return float(json.loads(first)["wall"]) - float(json.loads(first)["t"])
    except (ValueError, KeyError, OSError):
        return None


def read_events(run_dir: Path) -> list[dict]:
    """All events of a run (a torn last line from a crash is skipped)."""
    path = Path(run_dir) / TRACE_FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def token_totals(events: list[dict]) -> dict[str, int]:
    tot = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for ev in events:
        if ev.get("kind") == "reasoner_call":
            for k in tot:
                tot[k] += int(ev.get(k, 0) or 0)
    return tot


_current: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("vlmimic_tracer", default=None)


def current_tracer() -> Tracer | None:
    return _current.get()


@contextmanager
def use_tracer(tracer: Tracer) -> Iterator[Tracer]:
    token = _current.set(tracer)
    try:
        yield tracer
    finally:
        _current.reset(token)
