"""Finding and reading recorded runs (`runs/<id>/`, written by agents.trace.Tracer)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from agents.state import RunConfig
from agents.trace import RUN_FILE, SUMMARY_FILE, RunSummary, read_events
from core.errors import ConfigError
from core.settings import load_settings


class RunInfo(BaseModel):
    run_id: str
    path: str
    goal: str
    scene: str | None = None
    reasoner: str = ""
    robot: str = ""
    created_at: float = 0.0
    status: str = "unknown"
    outcome: str | None = None
    duration_s: float | None = None


class RunRecord(BaseModel):
    path: str
    config: RunConfig
    summary: RunSummary | None
    events: list[dict]


def runs_dir(base: Path | None = None) -> Path:
    return Path(base) if base is not None else load_settings().runs_dir


def resolve_run(ref: str | Path, base: Path | None = None) -> Path:
    """A run folder from a path, a run id, or a unique prefix of one (`runs` lists them)."""
    p = Path(ref)
    if (p / RUN_FILE).is_file():
        return p
    root = runs_dir(base)
    cand = root / str(ref)
    if (cand / RUN_FILE).is_file():
        return cand
    matches = sorted(d for d in root.glob(f"{ref}*") if (d / RUN_FILE).is_file()) if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(m.name for m in matches[:5])
        raise ConfigError(f"run {ref!r} is ambiguous: {names}{' ...' if len(matches) > 5 else ''}")
    raise ConfigError(f"no run {str(ref)!r} in {root}/ (see `python main.py runs`)")


def load_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / RUN_FILE
    try:
        return RunConfig.model_validate_json(path.read_text())
    except (OSError, ValidationError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable run configuration: {e}") from e


def load_summary(run_dir: Path) -> RunSummary | None:
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        return RunSummary.model_validate(json.loads(path.read_text()))
    except (ValidationError, ValueError):
        return None


def load_run(ref: str | Path, base: Path | None = None) -> RunRecord:
    d = resolve_run(ref, base)
    return RunRecord(path=str(d), config=load_config(d), summary=load_summary(d), events=read_events(d))


def list_runs(base: Path | None = None) -> list[RunInfo]:
    """Runs, newest first."""
    root = runs_dir(base)
    if not root.is_dir():
        return []
    out: list[RunInfo] = []
    for d in root.iterdir():
        if not (d / RUN_FILE).is_file():
            continue
        try:
            cfg = load_config(d)
        except ConfigError:
            continue
        s = load_summary(d)
        status = s.status if s else "unfinished"
        dur = (s.ended_at - s.started_at) if s and s.ended_at and s.started_at else None
        out.append(
            RunInfo(
                run_id=cfg.run_id,
                path=str(d),
                goal=cfg.goal,
                scene=(s.scene if s and s.scene else cfg.scene),
                reasoner=cfg.reasoner,
                robot=cfg.robot,
                created_at=cfg.created_at,
                status=status,
                outcome=s.outcome if s else None,
                duration_s=dur,
            )
        )
    return sorted(out, key=lambda r: r.created_at, reverse=True)
