"""The replay reasoner: answers from a recorded run (`runs/<id>/trace.jsonl`).

It reads the trace's reasoner calls (lines with "kind": "reasoner_call", or "type": "reasoner"
holding a ReasonerCall under "call") and answers the k-th question of each kind with the k-th
recorded answer of that kind, after checking the question is the one recorded (numbers compared
to 1e-6 relative, image paths ignored since run folders differ). A differing or unrecorded
question raises `ReplayMismatch` naming the question, its index and the first differing field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agents.reasoning.protocol import A, BaseReasoner, CallMeta, ReasonerError
from agents.reasoning.records import CallHook, ReasonerCall

TRACE_FILE = "trace.jsonl"
IGNORED_KEYS = {"image_path", "image_paths", "images"}


class ReplayMismatch(ReasonerError):
    """The run asks something the recorded run did not ask (or asked differently)."""


def load_calls(run_dir: Path) -> list[ReasonerCall]:
    path = Path(run_dir)
    path = path / TRACE_FILE if path.is_dir() else path
    if not path.is_file():
        raise ReasonerError(f"{path}: no trace to replay (expected runs/<id>/{TRACE_FILE})")
    calls = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReasonerError(f"{path}:{n}: not JSON ({e.msg})") from None
        data = None
        if ev.get("kind") == "reasoner_call":
            data = ev
        elif ev.get("type") == "reasoner":
            data = ev.get("call", ev)
        if data is None:
            continue
        fields = {k: v for k, v in data.items() if k in ReasonerCall.model_fields}
        fields.setdefault("reasoner", "recorded")
        fields.setdefault("input", {})
        try:
            calls.append(ReasonerCall.model_validate(fields))
        except ValidationError as e:
            raise ReasonerError(f"{path}:{n}: not a reasoner call: {e.errors()[0]['msg']}") from None
    return calls


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON values differ ("" when equal), numbers to 1e-6 relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in IGNORED_KEYS:
                continue
            if k not in a or k not in b:
                return f"{path}.{k} (present in only one)"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d is not None:
                return d
        return None
    numbers = isinstance(a, int | float) and isinstance(b, int | float)
    if numbers and not isinstance(a, bool) and not isinstance(b, bool):
        return None if math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9) else f"{path} ({a} vs {b})"
    return None if a == b else f"{path} ({json.dumps(a)[:60]} vs {json.dumps(b)[:60]})"


class ReplayReasoner(BaseReasoner):
    name = "replay"

    def __init__(self, run_dir: Path, on_call: CallHook | None = None) -> None:
        super().__init__(on_call)
        self.run_dir = Path(run_dir)
        self._recorded: dict[str, list[ReasonerCall]] = {}
        for c in load_calls(self.run_dir):
            self._recorded.setdefault(c.question, []).append(c)
        self._next: dict[str, int] = {}

    def _answer(self, question: str, q: BaseModel, answer_type: type[A]) -> tuple[A, CallMeta]:
        k = self._next.get(question, 0)
        recorded = self._recorded.get(question, [])
        if k >= len(recorded):
            raise ReplayMismatch(
                f"replay of {self.run_dir}: question {question!r} #{k + 1} was not recorded "
                f"(the recorded run asked it {len(recorded)} time(s))"
            )
        rec = recorded[k]
        diff = first_difference(q.model_dump(mode="json"), rec.input)
        if diff is not None:
            raise ReplayMismatch(f"replay of {self.run_dir}: question {question!r} #{k + 1} differs from the "
                                 f"recorded one at {diff}")
        if rec.error is not None or rec.answer is None:
            raise ReplayMismatch(f"replay of {self.run_dir}: question {question!r} #{k + 1} had no answer "
                                 f"when recorded ({rec.error})")
        self._next[question] = k + 1
        try:
            answer = answer_type.model_validate(rec.answer)
        except ValidationError as e:
            raise ReasonerError(f"replay of {self.run_dir}: recorded answer to {question!r} #{k + 1} is invalid: "
                                f"{e.errors()[0]['msg']}") from None
        return answer, CallMeta(model=f"replay:{rec.model or rec.reasoner}")
