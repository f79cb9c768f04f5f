"""Terminal views of a run: live progress while it runs, the closing table, and the replay timeline.

All three read trace events (agents.trace), so a live run and a replayed one look the same.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agents.trace import RunSummary

_CONCLUSION_KEYS = ("conclusion", "verdict", "decision", "diagnosis", "reason", "task", "text", "summary")
_COLOURS = {"achieved": "green", "failed": "red", "refused": "yellow", "pending": "dim", "running": "cyan",
            "not_achieved": "red", "needs_demos": "yellow", "error": "red", "skipped": "dim"}


def short_answer(answer: Any, limit: int = 90) -> str:
    """A one-line gist of a reasoner answer."""
    if isinstance(answer, dict):
        for k in _CONCLUSION_KEYS:
            v = answer.get(k)
            if isinstance(v, str | bool | int | float) and v != "":
                return _clip(f"{k}: {v}", limit)
        text = json.dumps(answer, default=str)
    else:
        text = str(answer)
    return _clip(text, limit)


def _clip(s: str, n: int) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def describe_event(ev: dict) -> tuple[str, str]:
    """(who, what) for one trace event."""
    k = ev.get("kind", "")
    if k in ("node_start", "node_end"):
        extra = f" {ev.get('status')}" if k == "node_end" else ""
        dur = f" ({ev.get('duration_s', 0):.2f} s)" if k == "node_end" else ""
        return ev.get("node", ""), f"{'start' if k == 'node_start' else 'end'}{extra}{dur}"
    if k == "say":
        return ev.get("agent", ""), _clip(str(ev.get("text", "")), 160)
    if k == "reasoner_call":
        err = f" ERROR {ev['error']}" if ev.get("error") else ""
        return "reasoner", (f"{ev.get('question')}: {short_answer(ev.get('answer'))}{err} "
                            f"[{ev.get('total_tokens', 0)} tok, {ev.get('latency_s', 0):.2f} s]")
    if k == "robot_command":
        if ev.get("status") == "started":
            return "arm", f"{ev.get('command')} {json.dumps(ev.get('args', {}), default=str)[:80]}"
        res = ev.get("result")
        st = res.get("status") if isinstance(res, dict) and "status" in res else (
            res.get("success") if isinstance(res, dict) else res)
        return "arm", f"{ev.get('command')} -> {st} ({ev.get('duration_s', 0):.2f} s)"
    if k in ("tool_call", "tool_result"):
        body = ev.get("args") if k == "tool_call" else ev.get("result")
        arrow = "<-" if k == "tool_call" else "->"
        return "tool", f"{ev.get('tool')} {arrow} {_clip(json.dumps(body, default=str), 100)}"
    if k == "step_start":
        return "step", f"{ev.get('index', 0) + 1}: {ev.get('text')}"
    if k == "step_end":
        return "step", (f"{ev.get('index', 0) + 1}: {ev.get('status')} (adapt {ev.get('adapt_rounds', 0)}, "
                        f"review {ev.get('review_rounds', 0)}, {ev.get('duration_s', 0):.1f} s)")
    if k == "round":
        gist = _clip(str(ev.get("conclusion", "")), 100)
        return "adapter", f"{ev.get('phase', '')} round {ev.get('round', '')}: {gist}"
    if k == "approval":
        return "approval", f"{ev.get('what')}: {'approved' if ev.get('approved') else 'refused'} ({ev.get('by')})"
    if k in ("run_start", "run_end", "error", "interrupt"):
        rest = {x: y for x, y in ev.items() if x not in ("t", "wall", "kind", "config")}
        return "run", f"{k} {_clip(json.dumps(rest, default=str), 120)}"
    rest = {x: y for x, y in ev.items() if x not in ("t", "wall", "kind")}
    return k, _clip(json.dumps(rest, default=str), 120)


class ProgressView:
    """Live panel: current agent, step, round, the reasoner's last conclusion, arm activity.

    Agent messages ("say" events) scroll above the panel. Use as a context manager and register
    `on_event` as a tracer listener.
    """

    def __init__(self, console: Console, goal: str) -> None:
        self.console = console
        self.goal = goal
        self.agent = "starting"
        self.step = "-"
        self.round = "-"
        self.conclusion = "-"
        self.arm = "idle"
        self.calls = 0
        self.tokens = 0
        self._live: Live | None = None

    def __enter__(self) -> ProgressView:
        self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def _render(self) -> Group:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("goal", self.goal)
        grid.add_row("agent", self.agent)
        grid.add_row("step", self.step)
        grid.add_row("round", self.round)
        grid.add_row("reasoner", f"{self.conclusion}  [dim]({self.calls} calls, {self.tokens} tokens)[/dim]")
        grid.add_row("arm", self.arm)
        return Group(grid)

    def on_event(self, ev: dict) -> None:
        k = ev.get("kind")
        if k == "node_start":
            self.agent = ev.get("node", "")
        elif k == "say":
            self.console.print(Text.assemble((f"[{ev.get('agent')}] ", "bold cyan"), str(ev.get("text", ""))))
        elif k == "step_start":
            self.step = f"{ev.get('index', 0) + 1}: {ev.get('text')}"
            self.round = "-"
        elif k == "round":
            self.round = f"{ev.get('phase', '')} {ev.get('round', '')}"
            if ev.get("conclusion"):
                self.conclusion = _clip(str(ev["conclusion"]), 90)
        elif k == "reasoner_call":
            self.calls += 1
            self.tokens += int(ev.get("total_tokens", 0) or 0)
            self.conclusion = f"{ev.get('question')}: {short_answer(ev.get('answer'), 70)}"
        elif k == "robot_command":
            self.arm = describe_event(ev)[1]
        elif k == "step_end":
            colour = _COLOURS.get(str(ev.get("status")), "white")
            self.console.print(f"[{colour}]step {ev.get('index', 0) + 1} {ev.get('status')}[/{colour}]: "
                               f"{ev.get('text')} ({ev.get('duration_s', 0):.1f} s)")
        if self._live is not None:
            self._live.update(self._render())


def summary_tables(summary: RunSummary) -> Group:
    """The closing table: steps with outcome, rounds and timings; subgoals; the outcome line."""
    parts: list[Any] = []
    if summary.steps:
        t = Table("#", "step", "outcome", "adapt", "review", "time (s)", "note", title="steps")
        for s in summary.steps:
            c = _COLOURS.get(s.status, "white")
            t.add_row(str(s.index + 1), s.text, f"[{c}]{s.status}[/{c}]", str(s.adapt_rounds), str(s.review_rounds),
                      f"{s.duration_s:.1f}", _clip(s.message, 60))
        parts.append(t)
    if summary.subgoals:
        t = Table("subgoal", "reached", title="subgoals")
        for name, ok in summary.subgoals.items():
            t.add_row(name, "[green]yes[/green]" if ok else "[red]no[/red]")
        parts.append(t)
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in summary.timings_s.items())
    c = _COLOURS.get(summary.outcome or "", "white")
    parts.append(Text.from_markup(
        f"[bold]outcome:[/bold] [{c}]{summary.outcome}[/{c}]  ({summary.status}; {timings}; "
        f"{summary.reasoner_calls} reasoner calls, {summary.tokens.get('total_tokens', 0)} tokens)"
    ))
    if summary.video:
        parts.append(Text(f"video: {summary.video}"))
    return Group(*parts)


def timeline_table(events: list[dict], *, verbose: bool = False) -> Table:
    """The replay timeline: time, who, what. Without `verbose`, node start/end pairs are folded."""
    t = Table("t (s)", "who", "what", title="timeline")
    for ev in events:
        if not verbose and ev.get("kind") in ("node_start", "tool_call") or (
            not verbose and ev.get("kind") == "robot_command" and ev.get("status") == "started"
        ):
            continue
        who, what = describe_event(ev)
        t.add_row(f"{float(ev.get('t', 0)):.2f}", who, what)
    return t
