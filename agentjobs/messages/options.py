"""``thinking`` and ``output_config``, as the Messages API takes them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt

from agentjobs.messages.content import Part

#: The API's smallest thinking budget.
MIN_THINKING_BUDGET = 1024


class ThinkingEnabled(Part):
    """Extended thinking with a budget (counted in ``max_tokens``, billed as output)."""

    type: Literal["enabled"]
    budget_tokens: StrictInt = Field(ge=MIN_THINKING_BUDGET)
    display: Literal["summarized", "omitted"] | None = None


class ThinkingAdaptive(Part):
    """The model decides when and how much to think."""

    type: Literal["adaptive"]
    display: Literal["summarized", "omitted"] | None = None


class ThinkingDisabled(Part):
    type: Literal["disabled"]


class ThinkingBetweenTools(Part):
    type: Literal["between_tools"]


Thinking = Annotated[
    ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled | ThinkingBetweenTools,
    Field(discriminator="type"),
]


class JSONOutputFormat(Part):
    """Structured output: the answer's text is JSON that follows ``schema``."""

    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(Part):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JSONOutputFormat | None = None
