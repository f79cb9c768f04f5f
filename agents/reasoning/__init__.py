"""The reasoner seam: typed questions answered by an LLM, by offline geometry, or from a recorded run.

    reasoner = make_reasoner("offline" | "llm" | "replay:runs/<id>")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agents.reasoning.protocol import BaseReasoner, Reasoner, ReasonerError
from agents.reasoning.records import CallHook, ReasonerCall
from core.errors import ConfigError

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = ["BaseReasoner", "Reasoner", "ReasonerCall", "ReasonerError", "make_reasoner"]


def make_reasoner(spec: str = "offline", settings: Settings | None = None, on_call: CallHook | None = None) -> Reasoner:
    """'offline' | 'llm' | 'replay:RUN_DIR' (RUN_DIR may also be a run id under settings.runs_dir)."""
    spec = (spec or "offline").strip()
    if spec == "offline":
        from agents.reasoning.offline import OfflineReasoner

        return OfflineReasoner(on_call=on_call)
    if spec == "llm":
        from agents.reasoning.llm import LLMReasoner
        from core.settings import load_settings

        return LLMReasoner((settings or load_settings()).llm, on_call=on_call)
    if spec.startswith("replay:"):
        from agents.reasoning.replay import ReplayReasoner

        target = Path(spec.split(":", 1)[1])
        if not target.exists():
            from core.settings import load_settings

            alt = (settings or load_settings()).runs_dir / target
            target = alt if alt.exists() else target
        return ReplayReasoner(target, on_call=on_call)
    raise ConfigError(f"reasoner {spec!r}: expected offline, llm or replay:RUN_DIR")
