"""The format contract: the model of a declarative report layout (``schemas/formats/*.yaml``).

``FormatSpec`` says how to read a delimited text (CSV/TSV) or XLSX report and how its columns
become ``schemas.revenue.PARSED`` fields: types and formats, sign rules, date rules, currency,
identifiers, value maps; ``load_spec`` reads and validates one spec file. The parser that
applies a spec to a file is ``connectors.formats.spec``; ``docs/adding-a-format.md`` has an
annotated example.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.report_dates import NAMED_FORMS, is_date_format
from schemas.revenue import PARSED

IdField = Literal["isrc", "upc", "dsp_resource_id", "dsp_release_id", "proprietary_id"]
DATE_FIELDS = ("usage_start", "usage_end")
NUMBER_FIELDS = {"quantity": "integer", "amount": "decimal"}
MAPPABLE_FIELDS = tuple(f for f in PARSED if f not in ("line_no", "raw_hash"))
STRING_FIELDS = tuple(f for f in MAPPABLE_FIELDS if f not in NUMBER_FIELDS and f not in DATE_FIELDS)

ColumnType = Literal["string", "decimal", "integer", "date"]
SignedField = Literal["quantity", "amount"]
SIGNED_FIELDS: tuple[SignedField, ...] = ("quantity", "amount")
Span = Literal["day", "month", "year"]
# the calendar a file name's month is counted in (``file_period`` only)
Calendar = Literal["gregorian", "apple_fiscal"]

DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
HEADER_SEARCH_LINES = 20


class SpecError(ValueError):
    """A format spec file that cannot be used; the message names the file and the problem."""


def column_key(name: str) -> str:
    """Column names match ignoring case, surrounding/repeated spaces and a BOM."""
    return " ".join(name.replace("\ufeff", "").split()).casefold()


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _check_date_formats(value: list[str]) -> list[str]:
    bad = [f for f in value if not is_date_format(f)]
    if bad:
        raise ValueError(
            f"{bad} is not a date format: a strptime pattern (%Y-%m-%d) or one of "
            f"{', '.join(NAMED_FORMS)} (schemas/report_dates.py)"
        )
    return value


def _check_regex(value: str | None, what: str) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{what} is not a valid regular expression: {exc}") from exc
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnSpec(_Model):
    """One column of the layout: where it is, what it becomes, how it is typed."""

    name: str = Field(min_length=1, description="header text (a label for headerless layouts)")
    position: int | None = Field(None, ge=1, description="1-based column, headerless only")
    aliases: list[str] = Field(default_factory=list, description="accepted other header texts")
    field: str | None = Field(None, description="the schemas.revenue.PARSED field it fills")
    type: ColumnType | None = None
    format: list[str] = Field(
        default_factory=list,
        description="date forms, tried in order: strptime patterns or named forms (iso, us, eu, "
        "text, month, any: schemas.report_dates)",
    )
    required: bool = Field(False, description="the file is rejected without this column")
    not_null: bool = Field(False, description="a line without a value is a row error")
    null_values: list[str] = Field(default_factory=list, description="texts meaning 'no value'")
    allowed: list[str] = Field(default_factory=list, description="the only accepted values")
    info: bool = Field(False, description="not a revenue field: totalled into meta.extra")

    @field_validator("format", mode="before")
    @classmethod
    def _formats(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("format")
    @classmethod
    def _date_formats(cls, value: list[str]) -> list[str]:
        return _check_date_formats(value)

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str | None) -> str | None:
        if value is not None and value not in MAPPABLE_FIELDS:
            raise ValueError(
                f"{value!r} is not a canonical field; choose from {', '.join(MAPPABLE_FIELDS)}"
            )
        return value

    @model_validator(mode="after")
    def _typed(self) -> ColumnSpec:
        expected = (
            NUMBER_FIELDS.get(self.field or "")
            or ("date" if self.field in DATE_FIELDS else None)
            or ("string" if self.field else None)
        )
        if self.field and self.type and self.type != expected:
            raise ValueError(f"field {self.field} is of type {expected}, not {self.type}")
        if self.field and self.info:
            raise ValueError("an info column does not fill a field")
        if self.kind == "date" and not self.format:
            raise ValueError(f"column {self.name!r} is a date: give its `format` (e.g. iso, us)")
        return self

    @property
    def kind(self) -> ColumnType:
        """The column's type: as declared, else the field's, else text."""
        if self.type:
            return self.type
        if self.field in NUMBER_FIELDS:
            return NUMBER_FIELDS[self.field]  # type: ignore[return-value]
        if self.field in DATE_FIELDS:
            return "date"
        return "string"


class Condition(_Model):
    """``column`` compared (ignoring case and surrounding spaces) by exactly one operator."""

    column: str
    equals: str | None = None
    in_: list[str] | None = Field(None, alias="in")
    matches: str | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [k for k in ("equals", "in_", "matches") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, in, matches")
        _check_regex(self.matches, "matches")
        return self


class SignRule(_Model):
    """Lines matching ``when`` get ``fields`` made negative (``-abs``) or negated."""

    when: Condition
    action: Literal["negative", "negate"] = "negative"
    fields: list[SignedField] = Field(default_factory=lambda: list(SIGNED_FIELDS))


class ValueSource(_Model):
    """A value from a column, a constant, or a regex group in the file name."""

    column: str | None = None
    value: str | None = None
    filename: str | None = Field(None, description="regex; group 1 (or the match) is the value")

    @model_validator(mode="after")
    def _one_source(self) -> ValueSource:
        given = [k for k in ("column", "value", "filename") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, value, filename")
        _check_regex(self.filename, "filename")
        return self


class DateSource(_Model):
    """A date from a column or the file name, and the span one value covers."""

    column: str | None = None
    filename: str | None = Field(None, description="regex; group 1 (or the match) is the date")
    format: list[str] = Field(
        min_length=1, description="strptime patterns or named forms (iso, month...), in order"
    )
    span: Span = "day"
    calendar: Calendar = Field(
        "gregorian",
        description="apple_fiscal: the month named is Apple's fiscal month (file_period only)",
    )
    optional: bool = Field(
        False, description="a file name without it is no error: the lines' dates say (file_period)"
    )

    @field_validator("format", mode="before")
    @classmethod
    def _formats(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("format")
    @classmethod
    def _date_formats(cls, value: list[str]) -> list[str]:
        return _check_date_formats(value)

    @model_validator(mode="after")
    def _one_source(self) -> DateSource:
        if (self.column is None) == (self.filename is None):
            raise ValueError("give exactly one of column, filename")
        _check_regex(self.filename, "filename")
        return self


class DateRules(_Model):
    """Where usage dates and the file's declared period come from.

    ``usage_period``: one value (e.g. ``2026-01`` with span month) gives both usage_start and
    usage_end. ``usage_start`` alone gives usage_end = the end of its span. ``file_period``
    (from the file name) sets ``FileMeta.period_start/end``; without it the period is the span
    of the lines' usage dates (adjustment lines left out).
    """

    usage_start: DateSource | None = None
    usage_end: DateSource | None = None
    usage_period: DateSource | None = None
    file_period: DateSource | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DateRules:
        if self.usage_period and (self.usage_start or self.usage_end):
            raise ValueError("usage_period gives both dates: drop usage_start/usage_end")
        if self.usage_end and not self.usage_start:
            raise ValueError("usage_end needs usage_start")
        if self.file_period and self.file_period.filename is None:
            raise ValueError("file_period comes from the file name (filename: regex)")
        for key in ("usage_start", "usage_end", "usage_period"):
            src = getattr(self, key)
            if src is not None and (src.calendar != "gregorian" or src.optional):
                raise ValueError(f"{key}: calendar and optional apply to file_period only")
        fp = self.file_period
        if fp is not None and fp.calendar != "gregorian" and fp.span != "month":
            raise ValueError("file_period: a fiscal calendar names months (span: month)")
        return self


class FooterSpec(_Model):
    lines: int = Field(0, ge=0, description="trailing lines that are not data")
    pattern: str | None = Field(None, description="regex: first matching line ends the data")

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value, "footer.pattern")


class ControlTotals(_Model):
    """Regexes over the skipped (footer/ignored) lines; group 1 is the file's own figure."""

    amount: str | None = Field(None, description="the file's total amount (one currency)")
    lines: str | None = Field(None, description="the number of data lines the file declares")

    @field_validator("amount", "lines")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None and re.compile(_check_regex(value, "the value") or "").groups < 1:
            raise ValueError("the regex needs a group holding the figure")
        return value


class NumberFormat(_Model):
    decimal: Literal[".", ","] = "."
    thousands: Literal[",", ".", " ", "'", "\u00a0"] | None = None
    parentheses_negative: bool = False

    @model_validator(mode="after")
    def _distinct(self) -> NumberFormat:
        if self.thousands == self.decimal:
            raise ValueError("decimal and thousands separators must differ")
        return self


class FormatSpec(_Model):
    """A report layout. Each canonical field has at most one source."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1, description="what it is and where the layout is from")
    kind: Literal["delimited", "xlsx"] = "delimited"
    file_name: str | None = Field(None, description="regex searched in the file name")
    encoding: Literal["auto", "utf-8", "utf-16", "utf-16-le", "utf-16-be", "cp1252", "latin-1"] = (
        "auto"
    )
    delimiter: str = ","
    quote: str | None = '"'
    header: int | Literal["none", "auto"] = Field(0, description="0-based header line, none, auto")
    header_search_lines: int = Field(HEADER_SEARCH_LINES, ge=1)
    skip_rows: int = Field(0, ge=0, description="lines after the header (or at the top) to skip")
    footer: FooterSpec = FooterSpec()
    control_totals: ControlTotals = ControlTotals()
    ignore_pattern: str | None = Field(None, description="regex: matching lines are skipped")
    sheet: int | str = 0
    fingerprint: list[str] = Field(default_factory=list, description="columns identifying it")
    fingerprint_pattern: str | None = Field(None, description="regex on the first data line")
    columns: list[ColumnSpec] = Field(min_length=1)
    required_columns: list[str] = Field(default_factory=list)
    constants: dict[str, str] = Field(default_factory=dict)
    currency: ValueSource | None = None
    sign_rules: list[SignRule] = Field(default_factory=list)
    date_rules: DateRules = DateRules()
    identifiers: dict[IdField, list[str]] = Field(default_factory=dict)
    territory_map: dict[str, str] = Field(default_factory=dict)
    usage_type_map: dict[str, str] = Field(default_factory=dict)
    commercial_model_map: dict[str, str] = Field(default_factory=dict)
    value_maps: dict[str, dict[str, str]] = Field(default_factory=dict)
    null_values: list[str] = Field(default_factory=list, description="texts meaning 'no value'")
    number_format: NumberFormat = NumberFormat()

    @field_validator("header", mode="before")
    @classmethod
    def _header(cls, value: Any) -> Any:
        if value is None or value is False:
            return "none"
        if isinstance(value, int) and value < 0:
            raise ValueError("the header line index counts from 0")
        return value

    @field_validator("delimiter", mode="before")
    @classmethod
    def _delimiter(cls, value: Any) -> Any:
        value = DELIMITER_NAMES.get(value, value) if isinstance(value, str) else value
        if not isinstance(value, str) or len(value) != 1:
            raise ValueError("a single character, or tab/comma/semicolon/pipe")
        return value

    @field_validator("quote")
    @classmethod
    def _quote(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError("a single character, or null for no quoting")
        return value

    @field_validator("identifiers", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_list(v) for k, v in value.items()}
        return value

    @field_validator("file_name", "fingerprint_pattern", "ignore_pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value, "the value")

    @model_validator(mode="after")
    def _coherent(self) -> FormatSpec:
        names: dict[str, str] = {}
        for col in self.columns:
            for label in (col.name, *col.aliases):
                key = column_key(label)
                if key in names:
                    raise ValueError(f"column name {label!r} is used twice ({names[key]!r})")
                names[key] = col.name
        declared = {column_key(c.name) for c in self.columns}

        def known(column: str, where: str) -> None:
            if column_key(column) not in declared:
                raise ValueError(f"{where}: column {column!r} is not declared in columns")

        if self.header == "none":
            missing = [c.name for c in self.columns if c.position is None]
            if missing:
                raise ValueError(f"header: none needs a position for every column: {missing}")
            positions = [c.position for c in self.columns]
            if len(set(positions)) != len(positions):
                raise ValueError("two columns share a position")
        else:
            placed = [c.name for c in self.columns if c.position is not None]
            if placed:
                raise ValueError(f"position is for headerless layouts only: {placed}")
        if self.header == "auto" and not self.fingerprint:
            raise ValueError("header: auto finds the header by its fingerprint columns: add them")
        if self.kind == "xlsx" and self.fingerprint_pattern:
            raise ValueError("fingerprint_pattern is for delimited text")
        for name in self.fingerprint:
            known(name, "fingerprint")
        for name in self.required_columns:
            known(name, "required_columns")
        for i, rule in enumerate(self.sign_rules):
            known(rule.when.column, f"sign_rules[{i}]")
        if self.currency and self.currency.column:
            known(self.currency.column, "currency")
        for key in ("usage_start", "usage_end", "usage_period"):
            src = getattr(self.date_rules, key)
            if src is not None and src.column:
                known(src.column, f"date_rules.{key}")
        for id_field, id_columns in self.identifiers.items():
            if not id_columns:
                raise ValueError(f"identifiers.{id_field}: name at least one column")
            for name in id_columns:
                known(name, f"identifiers.{id_field}")

        sources: dict[str, list[str]] = {}

        def source(fld: str, what: str) -> None:
            sources.setdefault(fld, []).append(what)

        for col in self.columns:
            if col.field:
                source(col.field, f"column {col.name!r}")
        for id_field in self.identifiers:
            source(id_field, "identifiers")
        for const in self.constants:
            if const not in STRING_FIELDS:
                raise ValueError(f"constants: {const!r} is not a text field ({STRING_FIELDS})")
            source(const, "constants")
        if self.currency:
            source("currency", "currency")
        if self.date_rules.usage_period:
            source("usage_start", "date_rules.usage_period")
            source("usage_end", "date_rules.usage_period")
        if self.date_rules.usage_start:
            source("usage_start", "date_rules.usage_start")
            source("usage_end", "date_rules.usage_start")
        if self.date_rules.usage_end:
            sources["usage_end"] = [
                s for s in sources["usage_end"] if s != "date_rules.usage_start"
            ]
            source("usage_end", "date_rules.usage_end")
        twice = {f: s for f, s in sources.items() if len(s) > 1}
        if twice:
            detail = "; ".join(f"{f} from {' and '.join(s)}" for f, s in twice.items())
            raise ValueError(f"a field has more than one source: {detail}")
        for required in ("amount", "currency"):
            if required not in sources:
                raise ValueError(f"no source for {required}: map a column to it")
        for mapped in self.value_maps:
            if mapped not in STRING_FIELDS:
                raise ValueError(f"value_maps: {mapped!r} is not a text field")
        for mapped, attr in (
            ("territory", "territory_map"),
            ("usage_type", "usage_type_map"),
            ("commercial_model", "commercial_model_map"),
        ):
            if getattr(self, attr) and mapped in self.value_maps:
                raise ValueError(f"{mapped}: use either {attr} or value_maps.{mapped}")
        return self

    # -- derived ---------------------------------------------------------------------------------

    def column(self, name: str) -> ColumnSpec:
        key = column_key(name)
        return next(c for c in self.columns if column_key(c.name) == key)

    def maps(self) -> dict[str, dict[str, str]]:
        """Every value map by field, keys lower-cased (matching ignores case)."""
        out = {f: dict(m) for f, m in self.value_maps.items()}
        for fld, m in (
            ("territory", self.territory_map),
            ("usage_type", self.usage_type_map),
            ("commercial_model", self.commercial_model_map),
        ):
            if m:
                out[fld] = dict(m)
        return {f: {k.strip().casefold(): v for k, v in m.items()} for f, m in out.items()}

    def used_columns(self) -> set[str]:
        """Columns that are read: mapped, checked, or referenced by a rule. Others only count
        for drift (their presence is checked, their values are not)."""
        used = {c.name for c in self.columns if c.field or c.info or c.not_null or c.allowed}
        refs = [n for cols in self.identifiers.values() for n in cols]
        refs += [r.when.column for r in self.sign_rules]
        if self.currency and self.currency.column:
            refs.append(self.currency.column)
        for src in (
            self.date_rules.usage_start,
            self.date_rules.usage_end,
            self.date_rules.usage_period,
        ):
            if src is not None and src.column:
                refs.append(src.column)
        return used | {self.column(n).name for n in refs}

    def is_required(self, col: ColumnSpec) -> bool:
        return col.required or column_key(col.name) in {
            column_key(n) for n in self.required_columns
        }


def parse_spec(text: str, where: str = "spec") -> FormatSpec:
    """Validate spec text (YAML); ``SpecError`` says what is wrong, and where (field paths)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: cannot read the spec: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{where}: a format spec is a YAML mapping (name:, columns:, ...)")
    try:
        return FormatSpec.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(
            f"  - {'.'.join(str(p) for p in err['loc']) or '(spec)'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise SpecError(f"{where}: invalid format spec:\n{problems}") from exc


def load_spec(path: Path) -> FormatSpec:
    """Read and validate one spec file; ``SpecError`` says what is wrong, and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc}") from exc
    spec = parse_spec(text, str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name {spec.name!r} must match the file name {path.stem!r}")
    return spec
