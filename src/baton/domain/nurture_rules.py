"""The contract's ``nurture`` section: sequences of paced, personal emails for leads
that went back to marketing, which rejection reasons and tags enroll into which
sequence, and the templates the steps send.

Pure: the model, its cross-checks and the template checks (Jinja2 parses and inspects
templates without any I/O). Rendering for a real lead is
:mod:`baton.notify.nurture_templates`.

Every mistake is found when the contract is validated, never at send time:
:func:`nurture_problems` names the exact path of each (``nurture.sequences.not-ready.
steps[1].delay_days: 3 is below nurture.delay_days.min 6``,
``nurture.templates.check-in.html: unknown variable 'lead.frist_name'``).

Templates see ``lead`` (:data:`TEMPLATE_LEAD_FIELDS` and ``attributes``), ``rep`` (the
last rep who had the lead, or None: :data:`TEMPLATE_REP_FIELDS`) and
``unsubscribe_url``. A missing value is None, printed as nothing; ``default`` treats
None and "" as missing too, so ``{{ lead.first_name | default("there") }}`` is the
fallback. ``lead.attributes.<key>`` may be absent on any lead, so it must carry a
``default`` (or be read with ``lead.attributes.get('key')``).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache
from html import unescape as html_unescape
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.filters import do_default
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment
from jinja2.visitor import NodeTransformer
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from baton.domain.leads import fold_source
from baton.domain.suggest import suggest

NurtureGrade = Literal["A", "B", "C", "D"]

ExitReason = Literal[
    "reply", "hand_raise", "re_mql", "unsubscribe", "hard_bounce", "sales_took_back"
]
EXIT_REASONS: tuple[ExitReason, ...] = (
    "reply",
    "hand_raise",
    "re_mql",
    "unsubscribe",
    "hard_bounce",
    "sales_took_back",
)
EXIT_LABELS: dict[str, str] = {
    "reply": "a reply",
    "hand_raise": "a hand-raise",
    "re_mql": "re-MQL",
    "unsubscribe": "unsubscribe",
    "hard_bounce": "a hard bounce",
    "sales_took_back": "sales taking the lead back",
}
ALWAYS_EXIT: frozenset[str] = frozenset({"unsubscribe", "hard_bounce"})
"""Exits no sequence can leave out: they end it whatever ``exit_on`` says."""

DELAY_LIMITS = (1, 365)
"""The widest bounds ``nurture.delay_days`` may set, in days."""

TemplatePart = Literal["subject", "text", "html"]
TEMPLATE_PARTS: tuple[TemplatePart, ...] = ("subject", "text", "html")
SUBJECT_MAX_CHARS = 200

TEMPLATE_LEAD_FIELDS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "company",
    "title",
    "country",
    "region",
    "source",
    "campaign",
)
"""What ``lead.<field>`` may name in a template (besides ``lead.attributes``)."""

TEMPLATE_REP_FIELDS: tuple[str, ...] = ("name", "first_name", "email")
"""What ``rep.<field>`` may name; ``rep`` itself is None when no rep ever had the lead."""

TEMPLATE_VARIABLES: tuple[str, ...] = ("lead", "rep", "unsubscribe_url")

_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DelayBounds(_Strict):
    """The shortest and longest delay any step may wait after the previous touch."""

    min: int = Field(6, ge=DELAY_LIMITS[0], le=DELAY_LIMITS[1])
    max: int = Field(45, ge=DELAY_LIMITS[0], le=DELAY_LIMITS[1])

    @model_validator(mode="after")
    def _ordered(self) -> DelayBounds:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class StepWhen(_Strict):
    """When a step applies to a lead; a step that does not apply is skipped (no touch,
    the next step's delay counts from the last touch). ``working_days_only``: send on a
    working day of the lead's country (a weekend or holiday moves it to the next one)."""

    grades: list[NurtureGrade] | None = Field(None, min_length=1)
    sources: list[str] | None = Field(None, min_length=1)
    countries: list[str] | None = Field(None, min_length=1)
    working_days_only: bool = False

    @field_validator("sources")
    @classmethod
    def _fold_sources(cls, value: list[str] | None) -> list[str] | None:
        return [fold_source(v) for v in value] if value is not None else None

    @field_validator("countries")
    @classmethod
    def _upper_countries(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out = []
        for code in value:
            code = code.strip().upper()
            if not re.fullmatch(r"[A-Z]{2}", code):
                raise ValueError(f"'{code}' is not a country; use a two-letter code like DE")
            out.append(code)
        return out

    def applies(self, *, grade: str | None, source: str | None, country: str | None) -> bool:
        """Whether a lead with these values gets the step (``working_days_only`` moves
        the day; it never skips the step)."""
        if self.grades is not None and grade not in self.grades:
            return False
        if self.sources is not None and (source is None or fold_source(source) not in self.sources):
            return False
        return self.countries is None or (country or "").upper() in self.countries

    def describe(self) -> str:
        parts = []
        if self.grades:
            parts.append("grade " + "/".join(self.grades))
        if self.sources:
            parts.append("source " + ", ".join(self.sources))
        if self.countries:
            parts.append("country " + ", ".join(self.countries))
        text = "only for " + " and ".join(parts) if parts else ""
        if self.working_days_only:
            text += ("; " if text else "") + "on working days of the lead's country"
        return text


class NurtureStep(_Strict):
    """One touch: wait ``delay_days`` after the previous touch (after enrollment for
    the first step), then send ``template`` if ``when`` applies."""

    template: str = Field(min_length=1, max_length=100)
    delay_days: int
    when: StepWhen | None = None


class NurtureSequence(_Strict):
    """A named cadence. Ends after its last step, after ``max_touches`` sends, or on
    any of ``exit_on`` (unsubscribe and hard bounce always end it)."""

    description: str | None = Field(None, max_length=500)
    max_touches: int | None = Field(None, ge=1, le=100)
    exit_on: list[ExitReason] = Field(default_factory=lambda: list(EXIT_REASONS))
    steps: list[NurtureStep] = Field(min_length=1, max_length=100)

    @property
    def exits(self) -> frozenset[str]:
        """Every event that ends this sequence."""
        return frozenset(self.exit_on) | ALWAYS_EXIT


class NurtureEnroll(_Strict):
    """Which recycle rejection reason codes and which lead tags enroll into which
    sequence."""

    rejection_reasons: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _lower_tags(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip().lower(): v for k, v in value.items()}


class NurtureTemplate(_Strict):
    """One email: a one-line ``subject``, a ``text`` part and an optional ``html``
    part, each Jinja2 rendered in a sandbox (html autoescaped)."""

    subject: str = Field(min_length=1, max_length=1000)
    text: str = Field(min_length=1, max_length=50_000)
    html: str | None = Field(None, min_length=1, max_length=100_000)

    def part(self, name: TemplatePart) -> str | None:
        value: str | None = getattr(self, name)
        return value


class NurtureSection(_Strict):
    """The whole ``nurture`` section. Absent in a contract: no sequences, nothing is
    enrolled."""

    delay_days: DelayBounds = Field(default_factory=DelayBounds)
    max_touches: int = Field(10, ge=1, le=100)
    send_rate_per_minute: int = Field(120, ge=1, le=60_000)
    sequences: dict[str, NurtureSequence] = Field(default_factory=dict)
    enroll: NurtureEnroll = Field(default_factory=NurtureEnroll)
    templates: dict[str, NurtureTemplate] = Field(default_factory=dict)

    @field_validator("sequences", "templates")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.fullmatch(_NAME, name) or len(name) > 100:
                raise ValueError(f"'{name}' is not a name (lower case, digits, - and _)")
        return value

    def sequence(self, name: str) -> NurtureSequence | None:
        return self.sequences.get(name)

    def touch_cap(self, name: str) -> int:
        """The most emails ``name`` sends to one lead."""
        sequence = self.sequences[name]
        return sequence.max_touches if sequence.max_touches is not None else self.max_touches

    def sequence_for_reason(self, code: str) -> str | None:
        """The sequence a rejection with this reason code enrolls into, if any."""
        return self.enroll.rejection_reasons.get(code)

    def sequence_for_tags(self, tags: list[str] | tuple[str, ...] | set[str]) -> str | None:
        """The sequence the first matching tag (in the contract's order) enrolls into."""
        folded = {t.strip().lower() for t in tags}
        return next((seq for tag, seq in self.enroll.tags.items() if tag in folded), None)


def nurture_problems(section: NurtureSection, recycle_codes: Mapping[str, str]) -> list[str]:
    """``path: message`` for every cross-field mistake of the section: delays out of
    bounds, touch caps over the global one, unknown templates and sequences, reason
    codes that are not recycle reasons of the contract (``recycle_codes``: code →
    outcome of every rejection reason), and templates that do not compile or use an
    unknown variable."""
    problems: list[str] = []
    low, high = section.delay_days.min, section.delay_days.max
    templates = list(section.templates)
    sequences = list(section.sequences)
    for name, sequence in section.sequences.items():
        where = f"nurture.sequences.{name}"
        if sequence.max_touches is not None and sequence.max_touches > section.max_touches:
            problems.append(
                f"{where}.max_touches: {sequence.max_touches} is more than "
                f"nurture.max_touches {section.max_touches}"
            )
        for index, step in enumerate(sequence.steps):
            at = f"{where}.steps[{index}]"
            if not low <= step.delay_days <= high:
                problems.append(
                    f"{at}.delay_days: {step.delay_days} is outside the contract's bounds "
                    f"{low}..{high} days (nurture.delay_days)"
                )
            if step.template not in section.templates:
                problems.append(
                    f"{at}.template: unknown template '{step.template}'"
                    f"{suggest(step.template, templates)}; "
                    + (
                        f"use one of {', '.join(templates)}"
                        if templates
                        else "add it under nurture.templates"
                    )
                )
    for code, target in section.enroll.rejection_reasons.items():
        at = f"nurture.enroll.rejection_reasons.{code}"
        outcome = recycle_codes.get(code)
        if outcome is None:
            recyclable = [c for c, o in recycle_codes.items() if o == "recycle"]
            problems.append(
                f"{at}: unknown rejection reason '{code}'{suggest(code, recyclable)}; "
                + (
                    f"use a recycle reason: {', '.join(recyclable)}"
                    if recyclable
                    else "declare it under rejection_reasons with outcome recycle"
                )
            )
        elif outcome != "recycle":
            problems.append(
                f"{at}: reason '{code}' has outcome {outcome}; only a recycle reason "
                "sends a lead back to marketing"
            )
        if target not in section.sequences:
            problems.append(_unknown_sequence(at, target, sequences))
    for tag, target in section.enroll.tags.items():
        if target not in section.sequences:
            problems.append(_unknown_sequence(f"nurture.enroll.tags.{tag}", target, sequences))
    shared = _VALIDATION.set(_Budget(MAX_VALIDATION_OPERATIONS, MAX_VALIDATION_SECONDS))
    try:
        for name, template in section.templates.items():
            for part in TEMPLATE_PARTS:
                source = template.part(part)
                if source is not None:
                    problems.extend(
                        f"nurture.templates.{name}.{part}: {message}"
                        for message in template_problems(source, part)
                    )
    finally:
        _VALIDATION.reset(shared)
    return problems


def _unknown_sequence(at: str, target: str, sequences: list[str]) -> str:
    return f"{at}: unknown sequence '{target}'{suggest(target, sequences)}; " + (
        f"use one of {', '.join(sequences)}" if sequences else "add it under nurture.sequences"
    )


# -- templates ---------------------------------------------------------------------


def _default(value: Any, fallback: Any = "", boolean: bool = False) -> Any:
    """Jinja2's ``default``, also for None and "" (a lead field never filled in)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return fallback
    return do_default(value, fallback, boolean)


def _finalize(value: Any) -> Any:
    return "" if value is None else value


MAX_RENDERED_CHARS = 1_000_000
"""A render longer than this is refused (a loop gone wild), at validation and at send."""
MAX_RANGE = 1_000
MAX_LOOP_DEPTH = 2
MAX_REPEAT_CHARS = 10_000
MAX_INT_BITS = 3_322
"""About 1,000 decimal digits: a product of numbers bigger than this is refused (squaring
in a loop would take the CPU and memory)."""
MAX_VALUE_CHARS = MAX_RENDERED_CHARS
"""The longest text (or list) one template expression may build."""
MAX_WORK_CHARS = 5 * MAX_RENDERED_CHARS
"""All the text (and list items) one render may build, output included: whatever the
template does (doubling a ``namespace`` value in a loop, joining a list of copies,
``replace``), memory stays bounded by this."""
MAX_OPERATIONS = 200_000
"""Calls, attribute reads, operators and loop turns one render may make (an email
template needs a few hundred; exponential macro recursion needs millions)."""
MAX_RENDER_SECONDS = 2.0
"""Wall-clock backstop for one render."""


MAX_VALIDATION_OPERATIONS = 1_000_000
MAX_VALIDATION_SECONDS = 10.0
"""What checking ALL the templates of one contract may spend on trial renders (a
contract may hold many templates, each rendered twice per part)."""


class _Budget:
    """What one render has spent (kept in a context variable while it runs); a
    validation's budget is shared by every trial render of the contract."""

    __slots__ = ("chars", "deadline", "limit", "operations", "seconds", "shared")

    def __init__(
        self,
        limit: int = MAX_OPERATIONS,
        seconds: float = MAX_RENDER_SECONDS,
        shared: _Budget | None = None,
    ) -> None:
        self.operations = 0
        self.chars = 0
        self.limit = limit
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.shared = shared

    def tick(self, weight: int = 1) -> None:
        self.operations += weight
        if self.operations > self.limit:
            raise SecurityError(f"takes too much work to render (more than {self.limit:,} steps)")
        if self.operations & 0xFF == 0 and time.monotonic() > self.deadline:
            raise SecurityError(f"takes more than {self.seconds:g} s to render")
        if self.shared is not None:
            self.shared.tick(weight)

    def charge(self, size: int) -> None:
        self.chars += size
        if self.chars > MAX_WORK_CHARS:
            raise SecurityError(f"builds more than {MAX_WORK_CHARS:,} characters of text")


_BUDGET: ContextVar[_Budget | None] = ContextVar("baton_template_budget", default=None)
_VALIDATION: ContextVar[_Budget | None] = ContextVar("baton_validation_budget", default=None)


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict):
        return len(value)
    return 0


def _check_size(size: int) -> None:
    if size > MAX_VALUE_CHARS:
        raise SecurityError(f"builds a value longer than {MAX_VALUE_CHARS:,} characters")


def _spent(value: Any) -> Any:
    """``value`` after checking its size and charging it to the running render."""
    size = _size(value)
    _check_size(size)
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(size)
    return value


def _tick(weight: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick(weight)


def _joined_size(separator: str, items: list[Any]) -> int:
    return len(separator) * max(len(items) - 1, 0) + sum(
        len(i) if isinstance(i, str) else 8 for i in items
    )


def _replaced_size(text: str, old: str, new: str, count: int | None) -> int:
    found = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


class _Guard(NodeTransformer):
    """Rewrites a parsed template so every loop turn and every ``~`` goes through the
    sandbox's budget (Jinja2 compiles both to plain Python, out of the sandbox's reach)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        literal = sum(len(d.data) for d in node.find_all(nodes.TemplateData))
        node.iter = nodes.Call(
            nodes.Name("_baton_loop", "load", lineno=node.lineno),
            [node.iter, nodes.Const(literal + 1, lineno=node.lineno)],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return nodes.Call(
            nodes.Name("_baton_concat", "load", lineno=node.lineno),
            list(node.nodes),
            [],
            None,
            None,
            lineno=node.lineno,
        )


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox (no ``list.append``/``extend``, no ``dict.update``),
    bounding what a template may build and how long it may run: every call, attribute
    read, operator, loop turn and output is counted against a per-render budget
    (:data:`MAX_OPERATIONS`, :data:`MAX_WORK_CHARS`, :data:`MAX_RENDER_SECONDS`), no
    single value may pass :data:`MAX_VALUE_CHARS`, and what could build any size in one
    step is checked before it runs: powers, repetition, ``%``/``format`` padding,
    ``join``, ``replace``, ``translate``, ``sum`` of lists, ``batch``/``slice`` counts."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guarded = _Guard().visit(tree)
        assert isinstance(guarded, nodes.Template)
        guarded.set_environment(self)
        return guarded

    def wrap_str_format(self, value: Any) -> Any:
        # str.format's width (``'{:>999999999}'``) builds text of any size: refused
        # like the other padding methods (is_safe_attribute), not wrapped.
        return None

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _PADDING_METHODS:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call(
        __self,  # noqa: N805
        __context: Any,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and args:
            method = getattr(__obj, "__name__", "")
            if method == "join":
                items = list(args[0])
                _check_size(_joined_size(owner, items))
                args = (items, *args[1:])
            elif method == "replace" and len(args) >= 2:
                old, new = args[0], args[1]
                if isinstance(old, str) and isinstance(new, str):
                    count = args[2] if len(args) > 2 else kwargs.get("count")
                    _check_size(_replaced_size(owner, old, new, count))
        return _spent(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "**":
            if not all(isinstance(v, int | float) for v in (left, right)) or (
                abs(right) > 64 or abs(left) > 1_000_000
            ):
                raise SecurityError("powers are limited to small numbers in a template")
        elif operator == "%" and isinstance(left, str | bytes):
            raise SecurityError("%-formatting text is not allowed; write the text around the value")
        elif operator == "*":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                raise SecurityError("numbers in a template are limited to 1,000 digits")
            for seq, times in ((left, right), (right, left)):
                too_long = (
                    isinstance(seq, str | bytes | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > MAX_REPEAT_CHARS
                )
                if too_long:
                    raise SecurityError(
                        f"repeating builds more than {MAX_REPEAT_CHARS:,} characters"
                    )
        elif operator == "+":
            _check_size(_size(left) + _size(right))
        return _spent(super().call_binop(context, operator, left, right))

    def loop(self, iterable: Any, literal: int) -> Iterator[Any]:
        """A ``for`` loop's items, each turn counted (``literal``: the characters of
        plain text the loop body writes)."""
        for item in iterable:
            _tick()
            budget = _BUDGET.get()
            if budget is not None:
                budget.charge(literal)
            yield item

    def concat(self, *parts: Any) -> Any:
        """``a ~ b``: checked before it is built."""
        texts = [p if isinstance(p, str) else str(p) for p in parts]
        _check_size(sum(len(t) for t in texts))
        return _spent(markup_join(parts) if self.autoescape is True else str_join(texts))


_PADDING_METHODS = frozenset(
    {
        "center",
        "ljust",
        "rjust",
        "zfill",
        "expandtabs",
        "format",
        "format_map",
        "translate",
        "encode",
    }
)
"""Text methods whose width (or mapping) argument could build text of any size, and
``encode`` (bytes have their own padding and formatting; no email needs them)."""
_UNBOUNDED_FILTERS = ("center", "format", "indent", "wordwrap", "safe", "pprint", "random")
"""Filters left out: a width building text of any size, ``safe`` (lead data would
become markup), and output that changes from one render to the next."""
MAX_BATCH = 1_000


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range is limited to {MAX_RANGE:,} numbers in a template")
    return numbers


def _spending(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose result is checked and charged like any other value."""

    @functools.wraps(function)
    def filtered(*args: Any, **kwargs: Any) -> Any:
        _tick()
        return _spent(function(*args, **kwargs))

    return filtered


def _replace_checked(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> Any:
        _check_size(_replaced_size(str(s), str(old), str(new), count))
        return function(eval_ctx, s, old, new, count)

    return replace


def _join_checked(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
        items = list(value)
        _check_size(_joined_size(str(d), [i if isinstance(i, str) else "" for i in items]))
        return function(eval_ctx, items, d, attribute)

    return join


def _sum_checked(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def total(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
        if not isinstance(start, int | float):
            raise SecurityError("sum adds numbers only in a template")
        return function(environment, iterable, attribute, start)

    return total


def _count_checked(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def counted(value: Any, count: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(count, int) or not 0 < count <= MAX_BATCH:
            raise SecurityError(f"batch and slice take a count from 1 to {MAX_BATCH:,}")
        return function(value, count, *args, **kwargs)

    return counted


@lru_cache(maxsize=3)
def template_environment(part: TemplatePart) -> SandboxedEnvironment:
    """The sandbox a template ``part`` renders in: html autoescaped, subject and text
    not; an undefined name is an error; None prints as nothing; no loader (so no
    ``include``, ``import`` or ``extends``)."""
    env = _Sandbox(
        autoescape=part == "html",
        undefined=StrictUndefined,
        finalize=_finalize,
        keep_trailing_newline=part != "subject",
    )
    env.filters["default"] = _default
    env.filters["d"] = _default
    env.globals["range"] = _range
    env.globals["_baton_loop"] = env.loop
    env.globals["_baton_concat"] = env.concat
    env.globals.pop("lipsum", None)  # placeholder text, unbounded: no use in an email
    for name in _UNBOUNDED_FILTERS:
        env.filters.pop(name, None)
    env.filters["replace"] = _replace_checked(env.filters["replace"])
    env.filters["join"] = _join_checked(env.filters["join"])
    env.filters["sum"] = _sum_checked(env.filters["sum"])
    env.filters["batch"] = _count_checked(env.filters["batch"])
    env.filters["slice"] = _count_checked(env.filters["slice"])
    for name, function in list(env.filters.items()):
        env.filters[name] = _spending(function)
    return env


def bounded_render(template: Any, context: dict[str, Any]) -> str:
    """Render within the budget (:data:`MAX_OPERATIONS`, :data:`MAX_WORK_CHARS`,
    :data:`MAX_RENDER_SECONDS`), refusing an output past :data:`MAX_RENDERED_CHARS`
    as it grows. The only way a nurture template is rendered."""
    token = _BUDGET.set(_Budget(shared=_VALIDATION.get()))
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise SecurityError(f"renders more than {MAX_RENDERED_CHARS:,} characters")
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _BUDGET.reset(token)


@lru_cache(maxsize=1024)
def compile_part(source: str, part: TemplatePart) -> Any:
    """The compiled template (cached by source); raises TemplateSyntaxError."""
    return template_environment(part).from_string(source)


def template_problems(source: str, part: TemplatePart) -> list[str]:
    """What is wrong with one template part: a syntax error (with its line), a name
    that is not a template variable, a ``lead.``/``rep.`` field that does not exist, a
    ``lead.attributes.<key>`` without ``default``; then a trial render for a lead with
    every field and for a lead with none (and no rep), so what passes here renders at
    send time."""
    env = template_environment(part)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return [f"does not compile: {exc.message} (line {exc.lineno})"]
    problems: list[str] = []
    for message in _variable_problems(tree):
        if message not in problems:
            problems.append(message)
    if problems:
        return problems
    try:
        template = compile_part(source, part)
    except TemplateSyntaxError as exc:
        return [f"does not compile: {exc.message} (line {exc.lineno})"]
    for label, context in (
        ("a lead with every field", _FULL),
        ("a lead with no fields and no rep", _EMPTY),
    ):
        try:
            rendered = bounded_render(template, context)
        except (UndefinedError, SecurityError, TemplateError) as exc:
            hint = (
                "; rep is none when no rep ever had the lead and a lead field may be empty: "
                "guard it with {% if ... %} or give it a default"
                if "'None' has no attribute" in str(exc)
                else ""
            )
            return [f"fails for {label}: {exc}{hint}"]
        except Exception as exc:
            return [f"fails for {label}: {type(exc).__name__}: {exc}"]
        unsafe = UNSAFE_LINK.search(html_unescape(rendered))
        if unsafe is not None:
            return [
                f"links only to http(s) or mailto addresses (found {unsafe.group(0).strip()!r})"
            ]
        if part == "subject":
            if "\n" in rendered or "\r" in rendered:
                return ["must be one line (it renders with a line break)"]
            if len(rendered) > SUBJECT_MAX_CHARS:
                return [f"renders longer than {SUBJECT_MAX_CHARS} characters"]
    return problems


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    deepest = depth
    for child in node.iter_child_nodes():
        inner = depth + 1 if isinstance(child, nodes.For) else depth
        deepest = max(deepest, _loop_depth(child, inner))
    return deepest


_FORBIDDEN_TAGS: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Extends, "extends"),
    (nodes.Include, "include"),
    (nodes.Import, "import"),
    (nodes.FromImport, "import"),
    (nodes.ScopedEvalContextModifier, "autoescape"),
    (nodes.EvalContextModifier, "autoescape"),
)
"""Tags a nurture template may not use: there is no other template to reach, and
turning autoescaping off would let lead data become markup."""

UNSAFE_LINK = re.compile(
    r"""((?:href|src|action|formaction|background|poster)\s*=\s*["']?\s*)"""
    r"""(?:javascript|data|vbscript|file)\s*:""",
    re.IGNORECASE,
)
"""An html attribute linking to a script or inline data instead of a web address."""


def _variable_problems(tree: nodes.Template) -> Iterator[str]:
    for kind, tag in _FORBIDDEN_TAGS:
        if any(True for _ in tree.find_all(kind)):
            yield f"{{% {tag} %}} is not available in a nurture template"
    if _loop_depth(tree) > MAX_LOOP_DEPTH:
        yield f"loops may be nested at most {MAX_LOOP_DEPTH} deep"
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    assigned |= {m.name for m in tree.find_all(nodes.Macro)}
    builtin = {*template_environment("text").globals, *_RUNTIME_NAMES}
    for name in tree.find_all(nodes.Name):
        if name.ctx != "load" or name.name in assigned or name.name in builtin:
            continue
        if name.name not in TEMPLATE_VARIABLES:
            yield (
                f"unknown variable '{name.name}'{suggest(name.name, TEMPLATE_VARIABLES)}; "
                f"templates see {', '.join(TEMPLATE_VARIABLES)}"
            )
    defaulted = {
        id(f.node)
        for f in tree.find_all(nodes.Filter)
        if f.name in ("default", "d") and f.node is not None
    }
    # ``lead.attributes.x is defined`` is the guard itself, safe on a missing key.
    defaulted |= {
        id(t.node) for t in tree.find_all(nodes.Test) if t.name in ("defined", "undefined")
    }
    called = {id(c.node) for c in tree.find_all(nodes.Call)}
    for found in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(found, nodes.Getattr | nodes.Getitem)
        node = found
        base = node.node
        key = _key_of(node)
        if isinstance(base, nodes.Name) and base.name not in assigned:
            if base.name == "lead":
                if key is None:
                    yield "read lead fields by name (lead.first_name), not by a computed key"
                elif key != "attributes" and key not in TEMPLATE_LEAD_FIELDS:
                    yield (
                        f"unknown variable 'lead.{key}'{suggest(key, TEMPLATE_LEAD_FIELDS)}; "
                        f"a lead has {', '.join(TEMPLATE_LEAD_FIELDS)} and attributes.<key>"
                    )
            elif base.name == "rep":
                if key is None or key not in TEMPLATE_REP_FIELDS:
                    shown = key if key is not None else "[...]"
                    yield (
                        f"unknown variable 'rep.{shown}'{suggest(shown, TEMPLATE_REP_FIELDS)}; "
                        f"a rep has {', '.join(TEMPLATE_REP_FIELDS)}"
                    )
            elif base.name == "unsubscribe_url":
                yield "unsubscribe_url is text; it has no fields"
        elif (
            isinstance(base, nodes.Getattr)
            and isinstance(base.node, nodes.Name)
            and base.node.name == "lead"
            and base.attr == "attributes"
            and "lead" not in assigned
        ):
            if id(node) in called:
                if key not in ("get", "items", "keys", "values"):
                    yield f"lead.attributes.{key}() is not allowed; use lead.attributes.get('key')"
            elif id(node) not in defaulted:
                shown = key if key is not None else "[...]"
                yield (
                    f"lead.attributes.{shown} needs a fallback, since a lead may not have it: "
                    f"{{{{ lead.attributes.{shown} | default('...') }}}}"
                )


_RUNTIME_NAMES = frozenset({"loop", "caller", "varargs", "kwargs"})
"""Names Jinja2 itself defines inside loops and macros."""


def _key_of(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


_FULL: dict[str, Any] = {
    "lead": {
        **{name: f"sample {name}" for name in TEMPLATE_LEAD_FIELDS},
        "email": "sample@example.com",
        "country": "DE",
        "attributes": {},
    },
    "rep": {"name": "Sam Rep", "first_name": "Sam", "email": "sam@example.com"},
    "unsubscribe_url": "https://example.com/u/sample",
}
_EMPTY: dict[str, Any] = {
    "lead": {**dict.fromkeys(TEMPLATE_LEAD_FIELDS), "attributes": {}},
    "rep": None,
    "unsubscribe_url": "https://example.com/u/sample",
}


def describe_step(step: NurtureStep, index: int) -> str:
    """A step in words: ``2. after 14 days: case-study (only for grade A/B; on working
    days of the lead's country)``."""
    text = f"{index + 1}. after {step.delay_days} days: {step.template}"
    if step.when is not None and step.when.describe():
        text += f" ({step.when.describe()})"
    return text


def describe_sequence(section: NurtureSection, name: str) -> str:
    """A sequence in one sentence, for the contract page and the diff."""
    sequence = section.sequences[name]
    steps = "; ".join(describe_step(s, i) for i, s in enumerate(sequence.steps))
    exits = ", ".join(EXIT_LABELS[e] for e in EXIT_REASONS if e in sequence.exits)
    return (
        f"{len(sequence.steps)} step(s), at most {section.touch_cap(name)} emails: {steps}; "
        f"ends on {exits}"
    )


def diff_nurture(old: NurtureSection, new: NurtureSection) -> list[tuple[str, str]]:
    """(section, sentence) for what changed in the nurture section."""
    changes: list[tuple[str, str]] = []
    if old.delay_days != new.delay_days:
        changes.append(
            (
                "nurture",
                f"delay bounds {old.delay_days.min}..{old.delay_days.max} → "
                f"{new.delay_days.min}..{new.delay_days.max} days",
            )
        )
    for name in ("max_touches", "send_rate_per_minute"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(("nurture", f"{name} {before} → {after}"))
    for name in sorted(new.sequences.keys() - old.sequences.keys()):
        changes.append(
            ("nurture.sequences", f"sequence added: {name}: {describe_sequence(new, name)}")
        )
    for name in sorted(old.sequences.keys() - new.sequences.keys()):
        changes.append(("nurture.sequences", f"sequence removed: {name}"))
    for name in sorted(old.sequences.keys() & new.sequences.keys()):
        was, now = describe_sequence(old, name), describe_sequence(new, name)
        if was != now or old.sequences[name] != new.sequences[name]:
            changes.append(("nurture.sequences", f"sequence {name} now: {now}"))
    for label, before_map, after_map in (
        ("rejection reason", old.enroll.rejection_reasons, new.enroll.rejection_reasons),
        ("tag", old.enroll.tags, new.enroll.tags),
    ):
        for key in sorted(after_map.keys() | before_map.keys()):
            before, after = before_map.get(key), after_map.get(key)
            if before == after:
                continue
            if before is None:
                text = f"{label} {key} now enrolls into {after}"
            elif after is None:
                text = f"{label} {key} no longer enrolls (was {before})"
            else:
                text = f"{label} {key} enrolls into {after} (was {before})"
            changes.append(("nurture.enroll", text))
    for name in sorted(new.templates.keys() - old.templates.keys()):
        changes.append(("nurture.templates", f"template added: {name}"))
    for name in sorted(old.templates.keys() - new.templates.keys()):
        changes.append(("nurture.templates", f"template removed: {name}"))
    for name in sorted(old.templates.keys() & new.templates.keys()):
        before_t, after_t = old.templates[name], new.templates[name]
        parts = [p for p in TEMPLATE_PARTS if before_t.part(p) != after_t.part(p)]
        if parts:
            changes.append(("nurture.templates", f"template {name}: {', '.join(parts)} changed"))
    return changes
