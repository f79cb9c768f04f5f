"""`python main.py chat`: a conversation with the robot.

    you> wash the pan                      -> runs the goal (same as `--goal`), prints progress and the table
    you> now put the mango on the plate    -> another goal ("now", "please", "then" are dropped)
    you> what can you do?                  -> plans and skills in memory, and the simulated tasks
    you> forget the pour skill             -> removes the best-matching skill (and plans using it) from memory
    you> quit                              -> ends (so does end-of-input)

Intent parsing is deterministic (rules below) unless the chat runs with `--reasoner llm`, where the
LLM classifies the utterance into the same typed `Intent` (validated; on any LLM error the rules
decide and the chat says so). The LLM's answer is data: nothing it says is executed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from core.errors import VLMimicError

IntentKind = Literal["goal", "capabilities", "forget", "runs", "quit", "help", "empty"]
FORGET_THRESHOLD = 0.35


class Intent(BaseModel):
    kind: IntentKind
    goal: str = Field("", description="the task to perform, for kind=goal")
    target: str = Field("", description="what to forget, for kind=forget")


_QUIT = re.compile(r"^(quit|exit|bye|goodbye|q|stop chatting)[.!]*$", re.I)
_HELP = re.compile(r"^(help|\?|commands)$", re.I)
_CAPS = re.compile(
    r"^(what (else )?can you do|what do you know|what have you learn(ed|t)|list (your )?(skills|tasks|plans)|"
    r"(show|list) (me )?(the )?(skills|tasks|plans)|which (skills|tasks) do you (know|have)|skills|capabilities)\b",
    re.I,
)
_RUNS = re.compile(r"^(list |show )?(the )?(past |previous |recent )?runs$", re.I)
_FORGET = re.compile(r"^(please )?(forget|delete|remove|unlearn)\s+(about\s+)?(the\s+|your\s+)?(.+?)$", re.I)
_LEAD = re.compile(r"^(ok(ay)?|now|then|next|and|also|please|could you|can you|would you|i want you to|go ahead and)"
                   r"[\s,]+", re.I)
_TRAIL = re.compile(r"[\s,]*(please|now|for me|thanks|thank you)?[\s.!?]*$", re.I)


def parse_intent(text: str) -> Intent:
    """Deterministic intent parsing (the offline chat)."""
    t = " ".join(text.strip().split())
    if not t:
        return Intent(kind="empty")
    bare = t.rstrip("?!. ")
    if _QUIT.match(bare):
        return Intent(kind="quit")
    if _HELP.match(bare):
        return Intent(kind="help")
    if _CAPS.match(bare):
        return Intent(kind="capabilities")
    if _RUNS.match(bare):
        return Intent(kind="runs")
    m = _FORGET.match(bare)
    if m:
        target = re.sub(r"\s+(skill|skills|task|plan)$", "", m.group(5).strip(), flags=re.I)
        return Intent(kind="forget", target=target)
    goal = t
    for _ in range(4):
        new = _LEAD.sub("", goal)
        if new == goal:
            break
        goal = new
    goal = _TRAIL.sub("", goal).strip()
    return Intent(kind="goal", goal=goal) if goal else Intent(kind="empty")


class LLMIntentParser:
    """Classifies an utterance with the configured LLM (langchain_openai.ChatOpenAI, structured output)."""

    SYSTEM = (
        "You classify what a user tells a robot arm into one intent. kinds: goal (a manipulation task to do now: "
        "put the task in 'goal', without filler words), capabilities (asks what the robot can do or knows), "
        "forget (asks to forget/delete a skill or task: put what in 'target'), runs (asks for past runs), "
        "quit (wants to end), help. Answer only with the structured intent."
    )

    def __init__(self) -> None:
        from langchain_openai import ChatOpenAI

        from core.settings import load_settings

        s = load_settings().llm
        llm = ChatOpenAI(model=s.model, temperature=0.0, timeout=s.timeout_s, max_retries=s.max_retries)
        self._llm = llm.with_structured_output(Intent, method=s.structured_output)

    def __call__(self, text: str) -> Intent:
        out = self._llm.invoke([("system", self.SYSTEM), ("human", text)])
        return out if isinstance(out, Intent) else Intent.model_validate(out)


def _open_memory() -> Any:
    from agents.planner import embedder
    from core.settings import load_settings
    from memory.store import open_memory

    return open_memory(load_settings(), embedder=embedder())


def capabilities_text(memory: Any) -> Table:
    t = Table("kind", "name", "detail", title="what I can do")
    for plan in memory.list_plans():
        t.add_row("task (learned)", plan.goal, f"{len(plan.steps)} steps: " + "; ".join(s.subtask for s in plan.steps))
    for skill in memory.list_skills():
        rate = skill.stats.success_rate
        t.add_row("skill", skill.subtask, f"{skill.phase}, {skill.stats.tries} tries"
                  + (f", {rate:.0%} success" if rate is not None else "") + f"  [dim]{skill.id}[/dim]")
    try:
        from sim.tasks import TASKS

        for name, task in TASKS.items():
            t.add_row("sim task", task.goal_text, f"{name} (I learn it from 5 synthetic demos if needed)")
    except Exception as e:  # noqa: BLE001 - the simulator is optional for a chat on the real robot
        t.add_row("sim task", "-", f"simulator unavailable: {e}")
    return t


def forget(memory: Any, target: str) -> str:
    """Forget the skill that best matches `target`; says which, and which plans went with it."""
    hits = memory.search_skills(target, k=1)
    if not hits or hits[0][1] < FORGET_THRESHOLD:
        known = ", ".join(s.subtask for s in memory.list_skills()) or "none"
        return f"I have no skill matching '{target}' (skills: {known})."
    skill, score = hits[0]
    plans = memory.forget_skill(skill.id)
    also = f"; the plans that used it are gone too: {', '.join(plans)}" if plans else ""
    return f"Forgot the skill '{skill.subtask}' ({skill.id}, match {score:.2f}){also}."


HELP = ("Tell me a task ('wash the pan'), ask 'what can you do?', 'forget the pour skill', 'runs', or 'quit'.")


def chat_loop(
    console: Console,
    *,
    reasoner: str = "offline",
    robot: str = "sim",
    variant: str = "seen",
    seed: int = 0,
    yes: bool = False,
    read: Callable[[str], str] | None = None,
    run_goal: Callable[..., int] | None = None,
) -> None:
    """Read utterances until quit or end of input; each goal is one run (its own runs/<id>/)."""
    from agents.cli import list_runs_command, run_goal_command

    read = read or (lambda prompt: console.input(prompt))
    run_goal = run_goal or run_goal_command
    parser: Callable[[str], Intent] = parse_intent
    if reasoner == "llm":
        try:
            llm_parser = LLMIntentParser()
        except Exception as e:  # noqa: BLE001 - fall back to the rules, saying so
            console.print(f"[yellow]LLM intent parsing unavailable ({type(e).__name__}); using rules[/yellow]")
        else:
            def parser(text: str) -> Intent:
                try:
                    return llm_parser(text)
                except Exception as e:  # noqa: BLE001
                    console.print(f"[yellow]LLM intent failed ({type(e).__name__}); using rules[/yellow]")
                    return parse_intent(text)

    console.print(f"[bold]VLMimic chat[/bold] ({robot}, reasoner {reasoner}). {HELP}")
    turn = 0
    while True:
        try:
            text = read("you> ")
        except (EOFError, KeyboardInterrupt):
            console.print("bye")
            return
        intent = parser(text)
        if intent.kind == "quit":
            console.print("bye")
            return
        if intent.kind == "empty":
            continue
        if intent.kind == "help":
            console.print(HELP)
        elif intent.kind == "runs":
            list_runs_command(console)
        elif intent.kind in ("capabilities", "forget"):
            try:
                mem = _open_memory()
            except VLMimicError as e:
                console.print(f"[red]memory unavailable:[/red] {e}")
                continue
            try:
                if intent.kind == "capabilities":
                    console.print(capabilities_text(mem))
                else:
                    console.print(forget(mem, intent.target))
            finally:
                mem.close()
        else:
            console.print(f"[bold]robot>[/bold] on it: {intent.goal}")
            code = run_goal(console, goal=intent.goal, reasoner=reasoner, robot=robot, variant=variant,
                            seed=seed + turn, yes=yes)
            turn += 1
            verdict = {0: "done", 3: "finished, but the goal was not achieved"}.get(code, f"stopped (exit {code})")
            console.print(f"[bold]robot>[/bold] {verdict}.")
