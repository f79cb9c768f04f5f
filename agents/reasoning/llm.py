"""The LLM reasoner: every question through `langchain_openai.ChatOpenAI` on any OpenAI-compatible endpoint.

- Endpoint and key: the standard OPENAI_BASE_URL and OPENAI_API_KEY environment variables (read by
  the OpenAI client itself; the key is never copied into a trace, a log line or an error message).
- `core.settings.LLMSettings`: model, structured_output (json_schema | function_calling | json_mode),
  timeout_s, max_retries (transport retries by the client), reask_attempts (re-asks after an answer
  fails the schema), temperature.
- One template per question in prompts/<question>.md (`{{input}}` = the question as JSON,
  `{{schema}}` = the answer's JSON schema). Geometric questions follow the paper's two steps: the
  semantic constraint from the labelled renders first, then the geometric constraint from numbers.
- Images named by the question (image_path / image_paths) are sent as base64 `image_url` blocks.
- Tokens (usage metadata) and latency are counted per call, summed over re-asks.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agents.reasoning.protocol import A, BaseReasoner, CallMeta, ReasonerError
from agents.reasoning.records import CallHook
from core.errors import ConfigError
from core.settings import LLMSettings

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
SYSTEM = (
    "You are the vision-language reasoner of a robot that learns manipulation skills from human videos. "
    "Answer only with data that fits the requested schema. Numbers are metres, degrees, or fractions of an "
    "object's bounding box as stated. Never answer with code."
)
MAX_IMAGES = 8


class ReasonerRefused(ReasonerError):
    """The model refused to answer."""


def load_template(question: str) -> str:
    path = PROMPTS_DIR / f"{question}.md"
    if not path.is_file():
        raise ConfigError(f"{path}: prompt template missing for question {question!r}")
    return path.read_text()


def render_prompt(question: str, q: BaseModel, answer_type: type[BaseModel]) -> str:
    text = load_template(question)
    data = q.model_dump(mode="json", exclude={"image_path", "image_paths"})
    text = text.replace("{{input}}", json.dumps(data, indent=1))
    return text.replace("{{schema}}", json.dumps(answer_type.model_json_schema()))


def image_block(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ReasonerError(f"{p}: image for the reasoner not found")
    mime = mimetypes.guess_type(p.name)[0] or "image/png"
    data = base64.b64encode(p.read_bytes()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def _images(q: BaseModel) -> list[str]:
    out = [str(p) for p in (getattr(q, "image_paths", None) or [])]
    if getattr(q, "image_path", None):
        out.insert(0, str(q.image_path))  # type: ignore[attr-defined]
    return out[:MAX_IMAGES]


def _usage(msg: Any) -> tuple[int, int]:
    um = getattr(msg, "usage_metadata", None) or {}
    return int(um.get("input_tokens", 0) or 0), int(um.get("output_tokens", 0) or 0)


class LLMReasoner(BaseReasoner):
    name = "llm"

    def __init__(self, settings: LLMSettings | None = None, on_call: CallHook | None = None, *,
                 chat: Any = None) -> None:
        super().__init__(on_call)
        self.settings = settings or LLMSettings()
        if chat is None:
            try:
                from langchain_openai import ChatOpenAI
            except ImportError as e:  # pragma: no cover - a pinned dependency
                raise ConfigError("the llm reasoner needs langchain-openai (pip install langchain-openai)") from e
            try:
                chat = ChatOpenAI(model=self.settings.model, temperature=self.settings.temperature,
                                  timeout=self.settings.timeout_s, max_retries=self.settings.max_retries)
            except Exception as e:  # noqa: BLE001 - e.g. no OPENAI_API_KEY
                raise ConfigError(f"the llm reasoner cannot start: {type(e).__name__} (set OPENAI_API_KEY, and "
                                  "OPENAI_BASE_URL for a non-OpenAI endpoint)") from None
        self.chat = chat

    def _structured(self, answer_type: type[BaseModel]) -> Any:
        method = self.settings.structured_output
        kwargs: dict[str, Any] = {"method": method, "include_raw": True}
        if method == "json_schema":
            kwargs["strict"] = False
        # A JSON-schema dict (not the class) so that the SDK does not validate on its own: we validate,
        # and a bad answer becomes a re-ask instead of an exception inside the client.
        schema = answer_type.model_json_schema()
        schema.setdefault("title", answer_type.__name__)
        schema.setdefault("description", (answer_type.__doc__ or answer_type.__name__).strip().splitlines()[0])
        return self.chat.with_structured_output(schema, **kwargs)

    def _answer(self, question: str, q: BaseModel, answer_type: type[A]) -> tuple[A, CallMeta]:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        prompt = render_prompt(question, q, answer_type)
        if self.settings.structured_output == "json_mode":
            prompt += "\n\nReply with one JSON object valid against this JSON schema:\n" + json.dumps(
                answer_type.model_json_schema())
        content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
        content += [image_block(p) for p in _images(q)]
        messages: list[Any] = [SystemMessage(SYSTEM), HumanMessage(content=content)]
        runnable = self._structured(answer_type)
        meta = CallMeta(model=self.settings.model, attempts=0)
        last_error = ""
        for attempt in range(self.settings.reask_attempts + 1):
            meta.attempts = attempt + 1
            out = self._invoke(runnable, messages, question)
            raw = out.get("raw")
            pin, pout = _usage(raw)
            meta.prompt_tokens += pin
            meta.completion_tokens += pout
            refusal = (getattr(raw, "additional_kwargs", {}) or {}).get("refusal")
            if refusal:
                raise ReasonerRefused(f"{self.settings.model} refused to answer {question!r}: {str(refusal)[:200]}")
            parsed, err = out.get("parsed"), out.get("parsing_error")
            if parsed is not None and err is None:
                try:
                    answer = answer_type.model_validate(parsed.model_dump() if isinstance(parsed, BaseModel)
                                                        else parsed)
                    return answer, meta
                except ValidationError as e:
                    err = e
            last_error = _short_error(err)
            messages = [*messages, raw if raw is not None else AIMessage(content=""),
                        HumanMessage(content=f"That answer is not valid: {last_error}. Answer again with data "
                                             "that fits the schema exactly.")]
            if isinstance(raw, AIMessage) and raw.tool_calls:
                # a tool call must be answered before the next human turn
                from langchain_core.messages import ToolMessage

                messages.insert(-1, ToolMessage(content=f"invalid: {last_error}", tool_call_id=raw.tool_calls[0]["id"]))
        raise ReasonerError(f"{self.settings.model} gave no valid answer to {question!r} after "
                            f"{meta.attempts} attempt(s): {last_error}")

    def _invoke(self, runnable: Any, messages: list[Any], question: str) -> dict[str, Any]:
        import openai

        try:
            out = runnable.invoke(messages)
        except openai.APITimeoutError:
            raise ReasonerError(f"{self.settings.model} timed out after {self.settings.timeout_s:g} s on "
                                f"{question!r} (llm.timeout_s)") from None
        except openai.AuthenticationError:
            raise ReasonerError("the LLM endpoint rejected the API key (OPENAI_API_KEY)") from None
        except openai.APIConnectionError as e:
            raise ReasonerError(f"cannot reach the LLM endpoint (OPENAI_BASE_URL): {type(e).__name__}") from None
        except openai.APIStatusError as e:
            raise ReasonerError(f"the LLM endpoint answered HTTP {e.status_code} to {question!r}") from None
        except Exception as e:
            if "refus" in type(e).__name__.lower():
                raise ReasonerRefused(f"{self.settings.model} refused to answer {question!r}: {str(e)[:200]}") from None
            raise
        if not isinstance(out, dict):  # a runnable without include_raw
            return {"raw": None, "parsed": out, "parsing_error": None}
        return out


def _short_error(err: Any) -> str:
    if isinstance(err, ValidationError):
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e["loc"])
        return f"{err.error_count()} validation error(s), first at {loc or '<root>'}: {e['msg']}"
    if err is None:
        return "no parsable answer"
    return f"{type(err).__name__}: {str(err)[:300]}"
