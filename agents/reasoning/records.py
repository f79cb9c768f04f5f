"""`ReasonerCall`: what every reasoner implementation reports about each question it answers.

The trace (agents.trace, kind "reasoner_call") stores exactly these fields; the replay reasoner
reads them back. API keys never appear here (inputs are facts, answers are model output; the LLM
implementation never copies headers or settings into a call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field


class ReasonerCall(BaseModel):
    question: str = Field(description="recognise_task | label_segment | group_grasps | fit_trajectory | plan | ...")
    input: dict[str, Any]
    answer: dict[str, Any] | None = None
    model: str = Field("", description="the LLM's name, or '' for offline/replay")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_s: float = 0.0
    images: list[str] = Field(default_factory=list)
    reasoner: str = Field(description="implementation: llm | offline | replay")
    attempts: int = 1
    error: str | None = None


CallHook = Callable[[ReasonerCall], None]


def default_hook(call: ReasonerCall) -> None:
    """Record into the current run's trace when one is active (agents.trace.current_tracer())."""
    try:
        from agents.trace import current_tracer
    except ImportError:  # pragma: no cover - trace module absent
        return
    tracer = current_tracer()
    if tracer is not None:
        tracer.reasoner_call(call)
