"""A run's live objects: `RunContext` and `make_context`, which builds it (tracer, reasoner, memory, robot)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.run_world import build_sim, connect_real
from agents.state import RunConfig, StepBinding, StepResult
from agents.trace import Tracer
from core.settings import Settings, load_settings

AdapterFn = Callable[[StepBinding, "RunContext"], StepResult]
Approver = Callable[[dict], bool]


@dataclass
class RunContext:
    """The run's live objects. Built by `make_context`; tests build it with fakes at the edges."""

    config: RunConfig
    run_dir: Path
    tracer: Tracer
    settings: Settings = field(default_factory=load_settings)
    robot: Any = None  # tools.robot.protocols.Robot (wrapped: SafeRobot, traced)
    camera: Any = None  # tools.robot.protocols.Camera
    world: Any = None  # sim.world.SimWorld in simulation
    task: Any = None  # sim task (simulation only)
    params: Any = None  # sim.tasks.base.SceneParams (simulation only)
    subgoal_tracker: Any = None
    reasoner: Any = None
    memory: Any = None
    adapter: AdapterFn | None = None  # overrides agents.adapter (tests)
    closers: list[Callable[[], None]] = field(default_factory=list)
    sim_at: int | None = None  # the step the simulated world is at (None: freshly built)
    started_steps: set[int] = field(default_factory=set)

    def close(self) -> None:
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:  # noqa: BLE001 - closing must not mask the run's own error
                pass
        self.closers.clear()


# --- building a run's context ------------------------------------------------------------------

def make_context(
    cfg: RunConfig, run_dir: Path, *, adapter: AdapterFn | None = None, settings: Settings | None = None
) -> RunContext:
    """Build the live objects of a run: tracer, reasoner, memory and the robot/camera (sim or real)."""
    tracer = Tracer(run_dir)
    ctx = RunContext(config=cfg, run_dir=run_dir, tracer=tracer, adapter=adapter,
                     settings=settings or load_settings())
    ctx.closers.append(tracer.close)
    try:
        ctx.reasoner = _make_reasoner(cfg, ctx.settings)
        ctx.memory = _open_memory(ctx.settings)
        ctx.closers.append(ctx.memory.close)
        if cfg.simulated:
            build_sim(ctx)
        else:
            connect_real(ctx)
    except BaseException:
        ctx.close()
        raise
    return ctx


def _make_reasoner(cfg: RunConfig, settings: Settings) -> Any:
    from agents.reasoning import make_reasoner

    # Reasoners report each ReasonerCall to agents.trace.current_tracer(); our nodes set it.
    return make_reasoner(cfg.reasoner, settings)


def _open_memory(settings: Settings) -> Any:
    from agents.planner import embedder
    from memory.store import open_memory

    return open_memory(settings, embedder=embedder())
