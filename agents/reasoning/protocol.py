"""The `Reasoner` seam (DESIGN §3): one typed method per question the VLM answers.

Implementations: `LLMReasoner` (langchain_openai.ChatOpenAI, any OpenAI-compatible endpoint),
`OfflineReasoner` (deterministic geometry), `ReplayReasoner` (answers recorded in a run's trace).
All share `BaseReasoner`, which times each call and reports a `ReasonerCall` through `on_call`
(default: the current run's tracer), so every answer lands in the trace whichever implementation gave it.
It also satisfies agents.grounder's GroundingReasoner (recognise_task, label_segment).
"""

from __future__ import annotations

import time
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from agents.reasoning.questions import (
    CompareAnswer,
    CompareQuestion,
    DiagnoseAnswer,
    DiagnoseQuestion,
    GraspAnswer,
    GraspQuestion,
    PlanAnswer,
    PlanQuestion,
    SegmentLabel,
    SegmentQuestion,
    TaskQuestion,
    TaskRecognition,
    TrajectoryAnswer,
    TrajectoryQuestion,
)
from agents.reasoning.records import CallHook, ReasonerCall, default_hook
from core.errors import VLMimicError

A = TypeVar("A", bound=BaseModel)


class ReasonerError(VLMimicError):
    """The reasoner could not give a valid answer (malformed after re-asks, refusal, timeout, endpoint error)."""


@runtime_checkable
class Reasoner(Protocol):
    name: str

    def recognise_task(self, q: TaskQuestion) -> TaskRecognition: ...
    def label_segment(self, q: SegmentQuestion) -> SegmentLabel: ...
    def group_grasps(self, q: GraspQuestion) -> GraspAnswer: ...
    def fit_trajectory(self, q: TrajectoryQuestion) -> TrajectoryAnswer: ...
    def plan(self, q: PlanQuestion) -> PlanAnswer: ...
    def compare(self, q: CompareQuestion) -> CompareAnswer: ...
    def diagnose(self, q: DiagnoseQuestion) -> DiagnoseAnswer: ...


class CallMeta(BaseModel):
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1


class BaseReasoner:
    """Dispatches each typed question to `_answer` and reports a ReasonerCall for it (also on error)."""

    name = "base"

    def __init__(self, on_call: CallHook | None = None) -> None:
        self.on_call: CallHook = on_call if on_call is not None else default_hook
        self.calls: list[ReasonerCall] = []

    # --- implementations override this ---------------------------------------------------------
    def _answer(self, question: str, q: BaseModel, answer_type: type[A]) -> tuple[A, CallMeta]:
        raise NotImplementedError

    def _ask(self, question: str, q: BaseModel, answer_type: type[A]) -> A:
        t0 = time.perf_counter()
        images = [str(p) for p in (getattr(q, "image_paths", None) or [])]
        if getattr(q, "image_path", None):
            images.append(str(q.image_path))  # type: ignore[attr-defined]
        call = ReasonerCall(question=question, input=q.model_dump(mode="json"), reasoner=self.name, images=images)
        try:
            answer, meta = self._answer(question, q, answer_type)
        except Exception as e:
            call.latency_s = time.perf_counter() - t0
            call.error = f"{type(e).__name__}: {e}"
            self._emit(call)
            raise
        call.latency_s = time.perf_counter() - t0
        call.answer = answer.model_dump(mode="json")
        call.model = meta.model
        call.prompt_tokens = meta.prompt_tokens
        call.completion_tokens = meta.completion_tokens
        call.total_tokens = meta.prompt_tokens + meta.completion_tokens
        call.attempts = meta.attempts
        self._emit(call)
        return answer

    def _emit(self, call: ReasonerCall) -> None:
        self.calls.append(call)
        self.on_call(call)

    # --- the questions -------------------------------------------------------------------------
    def recognise_task(self, q: TaskQuestion) -> TaskRecognition:
        return self._ask("recognise_task", q, TaskRecognition)

    def label_segment(self, q: SegmentQuestion) -> SegmentLabel:
        return self._ask("label_segment", q, SegmentLabel)

    def group_grasps(self, q: GraspQuestion) -> GraspAnswer:
        return self._ask("group_grasps", q, GraspAnswer)

    def fit_trajectory(self, q: TrajectoryQuestion) -> TrajectoryAnswer:
        return self._ask("fit_trajectory", q, TrajectoryAnswer)

    def plan(self, q: PlanQuestion) -> PlanAnswer:
        return self._ask("plan", q, PlanAnswer)

    def compare(self, q: CompareQuestion) -> CompareAnswer:
        return self._ask("compare", q, CompareAnswer)

    def diagnose(self, q: DiagnoseQuestion) -> DiagnoseAnswer:
        return self._ask("diagnose", q, DiagnoseAnswer)

    def usage(self) -> dict[str, Any]:
        return {
            "calls": len(self.calls),
            "prompt_tokens": sum(c.prompt_tokens for c in self.calls),
            "completion_tokens": sum(c.completion_tokens for c in self.calls),
            "latency_s": round(sum(c.latency_s for c in self.calls), 3),
        }
