"""Statistical disclosure checks on tabular outputs (streamed), and the verdicts of ACRO.

Pure: no I/O beyond reading the binary stream it is handed, no frameworks, standard library only.
`check_tabular` reads a CSV/TSV file once: UTF-8 (a BOM is dropped, bad bytes replaced) through
io.TextIOWrapper, lines of bounded length into csv.reader, records gathered in blocks of at most 1,024 rows
(or 1 MiB of text) that are classified column by column (one regex pass for a block of one common shape, a
bounded cache for repeated values). What it keeps is per-column counters and a bounded number of flagged
cell positions, so memory does not grow with the number of rows; it is bounded by ``max_record_chars``,
the block, ``max_columns`` and ``max_flags``.

Rule ids (stable; `TabularOutcome.results` holds one `CheckResult` for each of the first four, in this order):

* ``table.parse`` -- the file could be read to the end as delimited UTF-8 text within the policy's limits.
  Fails for binary content (a known binary signature, NUL bytes, or mostly undecodable bytes in the first
  8 KiB), a record longer than ``max_record_chars`` characters (a huge field or an unterminated quote), a
  field over the csv module's process-wide ``csv.field_size_limit()`` (131,072 characters unless the
  process raised it; this module never changes that global), a row with more than ``max_columns`` fields,
  a read error or an invalid delimiter. Undecodable bytes are replaced (U+FFFD) and counted, not fatal.
  When the file cannot be read to the end, the other table rules fail as "not fully checked" unless
  they already failed on the part that was read.
* ``table.row_cap`` -- more data rows than ``max_rows`` (the whole file is still scanned, so the true
  count is reported).
* ``table.small_cells`` -- a frequency-table cell: an integer count ``0 < v < small_cell_threshold`` in a
  column that is judged to hold counts (heuristic below). Zero is fine.
* ``table.direct_identifier`` -- a column that looks like a direct identifier (heuristic below).
* ``acro.verdict`` -- ACRO's status for the file (see `parse_acro_results` and `acro_check`).

Header row. The first non-blank row is held back and decided on at the end of the file. It is a header
when (a) some column's first cell is text while every later non-empty cell of that column is typed (an
integer, decimal, date, postcode or NHS number) -- ``sex,n`` over ``M,3`` -- or (b) every non-empty cell
of the first row is text (``name,city`` over ``Alice,Leeds``). Otherwise the table is header-less and the
first row is checked as data (``Male,3,5`` over ``Female,12,20``). Missing-value and suppression markers
(empty, NA, N/A, NaN, NULL, None, -, ., *, x, c, [c], "<10", ...) count as empty everywhere, except that a
lone letter (``x``, ``c``) in the first row counts as header text.
`CellFlag.row` is the 0-based index among the non-blank data rows (header excluded; blank lines skipped).

Count columns (for ``table.small_cells``). A column is a count column when it has at least one integer and
all of its non-empty data cells are integers (``3``, ``+3``, ``3.0``, ``1,234``), and none of these says it
is something else:

* a negative value (counts are never negative);
* a value with a leading zero such as ``007`` (codes, not quantities);
* a header naming a non-count quantity: one of the word tokens year, yr, age, id, code, date, month,
  week, day, quarter, qtr, period, rank, index, idx, seq, sequence, row, version, postcode, zip, nhs,
  chi, lsoa, msoa, icd, pct, percent, percentage, rate, ratio, mean, median, average, avg, sd, std,
  stdev (after splitting on punctuation and camelCase: ``PatientID`` -> patient, id), or a ``%`` sign;
* a row index: the values run 0, 1, 2, ... or 1, 2, 3, ... in row order over every data row (at least
  two), and the column has no header text or an index-like one (``index``, ``Unnamed: 0``, ``#``) --
  what ``pandas.DataFrame.to_csv`` writes by default.

Why: only counts can be small-cell disclosive, and the common integer columns that are not counts
(years, ages, months, codes, ids, row indices) would otherwise drown the checker in false flags. A
year column needs no rule of its own: its values are never below the threshold. The heuristic errs
towards flagging: an un-named integer column that is not a plain row index is treated as counts, and
a genuine count column under a misleading header (say ``age``) is missed -- the human output checker
remains the last line. Every integer-only column that was excluded is named, with the reason, in the
rule's detail.

Direct identifiers (``table.direct_identifier``, skipped when ``check_identifiers`` is false). A column is
flagged, and each matching cell recorded, when

* NHS numbers: more than half of its non-empty cells are NHS-number-like -- 10 digits, or 3-3-4 separated
  by single spaces -- with a valid modulus-11 check digit (weights 10..2; 11 -> 0; 10 is invalid). An
  invalid check digit does not count, so ordinary 10-digit quantities rarely qualify (about 1 in 11 does
  by chance, which the majority rule absorbs);
* dates of birth: its header names one (tokens containing ``dob``, or ``date of birth``, ``birth date``,
  ``birthdate``, ``birthday``) and it has a non-empty cell, unless the header also says year, month,
  decade, age, band, group, range or category (``dob_year`` is a grouping, not an identifier); or its
  header mentions ``birth``/``born``/``dob`` and more than half of its non-empty cells are full dates
  (with a day). A header-less date column is not flagged: nothing says the dates are births. Year of
  birth alone is not flagged (a quasi-identifier, not a direct one);
* UK postcodes: more than half of its non-empty cells are full postcodes (outward and inward code,
  ``SW1A 1AA``, space optional, case-insensitive, with the Royal Mail letter restrictions). Districts
  alone (``SW1A``) are not full postcodes.

Flags. `TabularOutcome.flagged_cells` holds at most ``max_flags`` flags, the first in (row, column) order;
``total_flags`` and each rule's detail give the true count. Candidate positions are buffered only while a
column's fate is undecided, at most ``max_flags`` per column and rule and within an overall budget (at
least 65,536); past it the counts stay exact but fewer positions may be listed.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from array import array
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, BinaryIO

from gateway.domain.egress import CheckResult, sniff_media_type

RULE_PARSE = "table.parse"
RULE_ROW_CAP = "table.row_cap"
RULE_SMALL_CELLS = "table.small_cells"
RULE_DIRECT_IDENTIFIER = "table.direct_identifier"
RULE_ACRO = "acro.verdict"
TABLE_RULES = (RULE_PARSE, RULE_ROW_CAP, RULE_SMALL_CELLS, RULE_DIRECT_IDENTIFIER)


@dataclass(frozen=True)
class CellFlag:
    row: int  # 0-based data row index (header excluded)
    column: int  # 0-based column index
    rule_id: str


@dataclass(frozen=True)
class TabularPolicy:
    max_rows: int = 1_000_000
    small_cell_threshold: int = 10  # counts 1..threshold-1 are disclosive; 0 is fine
    check_identifiers: bool = True
    max_flags: int = 1000  # cap on recorded flagged cells (the count of all flags is still reported)
    max_record_chars: int = 1 << 20  # one record (possibly several lines) longer than this fails table.parse
    max_columns: int = 16_384  # columns past this are not checked and fail table.parse (Excel's width)


@dataclass(frozen=True)
class TabularOutcome:
    results: tuple[CheckResult, ...]  # one per rule in TABLE_RULES order
    flagged_cells: tuple[CellFlag, ...]
    rows: int  # data rows (header excluded)
    columns: int  # widest row
    total_flags: int = 0  # all flags found, including those past max_flags

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


# ---------------------------------------------------------------- cell classification

# Cell kinds. Integers are refined by what the count and identifier rules need to know about them.
_EMPTY = 0  # empty, or a missing-value / suppression marker
_TEXT = 1
_DEC = 2  # a number that is not integer-valued
_DATE = 3  # a full date
_POSTCODE = 4  # a full UK postcode
_NHS_OK = 5  # 3-3-4 spaced digits with a valid NHS check digit
_NHS_BAD = 6  # 3-3-4 spaced digits without one
_INT_SMALL = 7  # 0 < v < threshold
_INT = 8  # any other non-negative integer
_INT_NEG = 9  # negative
_INT_LZ = 10  # with a leading zero (a code)
_INT_NHS = 11  # 10 digits with a valid NHS check digit

_MISSING_WORDS = (
    "na", "n/a", "nan", "null", "none", "-", "--", ".", "..", "*", "x", "c", "[c]", "[x]", "[z]", "[u]", ":",
    "suppressed", "redacted", "missing", "#n/a",
)
_MISSING = frozenset(w for word in _MISSING_WORDS for w in (word, word.upper(), word.title()))
# One pass for the numeric shapes; the group that matched names the kind.
_NUMERIC = re.compile(
    r"(?P<int>[+-]?(?:\d+|\d+\.0*|\d{1,3}(?:,\d{3})+))"
    r"|(?P<nhs>\d{3} \d{3} \d{4})"
    r"|(?P<dec>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?|[+-]?\d{1,3}(?:,\d{3})+\.\d+)"
)
_NHS_SPACED = re.compile(r"\d{3} \d{3} \d{4}")
_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
_DATE_YMD = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _TIME)
_DATE_DMY = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})" + _TIME)
_DATE_DMONY = re.compile(
    r"(\d{1,2})[- ]?(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?[- ]?(\d{4}|\d{2})" + _TIME,
    re.IGNORECASE,
)
_POSTCODE_RE = re.compile(
    r"(?:[A-PR-UWYZ]\d\d?|[A-PR-UWYZ][A-HK-Y]\d\d?|[A-PR-UWYZ]\d[A-HJKPSTUW]|[A-PR-UWYZ][A-HK-Y]\d[ABEHMNPRVWXY])"
    r" ?\d[ABD-HJLNP-UW-Z]{2}|GIR ?0AA",
    re.IGNORECASE,
)
# Whole blocks of one shape (cells joined by newlines). Each line is an atomic group with one way to match,
# so a block that fails costs one linear pass. Text here is what _kind calls text whatever the details: it
# starts with a letter, ends with a non-space, and is longer than any postcode (8) or missing marker (10)
# -- or at least 9 long with a digit, which no missing marker has.
_DEC_LINE = r"(?>[+-]?\d*\.0*[1-9]\d*)"
_UINT_LINE = r"(?>0|[1-9]\d*)"
_TEXT_LINE = r"(?>[A-Za-z](?:(?=[^\n]{10})|(?=[^\n]{8})(?=[^\n]*\d))[^\n]*(?<=\S))"
_BLOCK_DEC = re.compile(_DEC_LINE + r"(?:\n" + _DEC_LINE + ")*+")
_BLOCK_UINT = re.compile(_UINT_LINE + r"(?:\n" + _UINT_LINE + ")*+")
_BLOCK_TEXT = re.compile(_TEXT_LINE + r"(?:\n" + _TEXT_LINE + ")*+")
_TOKENS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

_NOT_COUNT_TOKENS = frozenset({
    "year", "yr", "age", "id", "code", "date", "month", "week", "day", "quarter", "qtr", "period", "rank",
    "index", "idx", "seq", "sequence", "row", "version", "postcode", "zip", "nhs", "chi", "lsoa", "msoa",
    "icd", "pct", "percent", "percentage", "rate", "ratio", "mean", "median", "average", "avg", "sd", "std",
    "stdev",
})
_INDEX_HEADERS = frozenset({"", "index", "idx", "row", "rownum", "rowno", "rowid", "unnamed0", "unnamed"})
_DOB_NAMES = ("dateofbirth", "birthdate", "birthday", "dtofbirth")
_DOB_GROUPING = frozenset({"year", "yr", "month", "decade", "age", "band", "group", "range", "cat", "category"})
_BIRTH_WORDS = frozenset({"birth", "born", "dob"})

_SNIFF_BYTES = 8192
_KIND_CACHE_SIZE = 8192  # the cache of cell kinds is cleared when a block leaves it larger than this
_BLOCK_ROWS = 1024  # rows are checked column-wise a block at a time ...
_BLOCK_CHARS = 1 << 20  # ... of at most this many characters (plus one record)
_KIND_CACHE_KEY = 32
_MIN_CANDIDATE_BUDGET = 65_536
_MAX_LISTED_COLUMNS = 10


def _tokens(header: str) -> list[str]:
    return [t.lower() for t in _TOKENS.findall(header)]


def _normalised(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


def _is_date(v: str) -> bool:
    m = _DATE_YMD.fullmatch(v)
    if m:
        return 1 <= int(m.group(3)) <= 12 and 1 <= int(m.group(4)) <= 31
    m = _DATE_DMY.fullmatch(v)
    if m:
        a, b = int(m.group(1)), int(m.group(3))
        return (1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31)
    m = _DATE_DMONY.fullmatch(v)
    return m is not None and 1 <= int(m.group(1)) <= 31


def _kind(v: str, threshold: int) -> int:
    """Kind of a stripped cell value; `threshold` is the small-cell threshold."""
    if not v:
        return _EMPTY
    c = v[0]
    if v.isdigit() and v.isascii():
        pass
    elif c.isdigit() or (c in "+-." and any(ch.isdigit() for ch in v[1:3])):
        m = _NUMERIC.fullmatch(v)
        if m is None:
            return _DATE if _is_date(v) else _TEXT
        if m.lastgroup == "nhs":
            return _NHS_OK if nhs_check_digit_valid(v.replace(" ", "")) else _NHS_BAD
        if m.lastgroup == "dec":
            return _DEC
    elif c == "<" or v in _MISSING:
        return _EMPTY
    elif c.isalpha() and 5 <= len(v) <= 8 and _POSTCODE_RE.fullmatch(v):
        return _POSTCODE
    else:
        return _TEXT
    # an integer
    if len(v) == 10 and nhs_check_digit_valid(v):
        return _INT_NHS
    digits = v.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        return _INT_LZ
    value = _int_value(v)
    if value < 0:
        return _INT_NEG
    return _INT_SMALL if 0 < value < threshold else _INT


def _classify_block(values: tuple[str, ...], threshold: int) -> list[int]:
    """Kinds of many cells: the same answers as _kind, with one regex pass for blocks of one common shape."""
    n = len(values)
    joined = "\n".join(values)
    if joined.count("\n") == n - 1:  # no cell holds a newline, so lines are cells
        if _BLOCK_DEC.fullmatch(joined):
            return [_DEC] * n
        if _BLOCK_TEXT.fullmatch(joined):
            return [_TEXT] * n
        if _BLOCK_UINT.fullmatch(joined):
            kinds = [_INT] * n
            small_digits = len(str(threshold - 1)) if threshold > 1 else 0
            for i, v in enumerate(values):
                width = len(v)
                if width <= small_digits:
                    if 0 < int(v) < threshold:
                        kinds[i] = _INT_SMALL
                elif width == 10 and nhs_check_digit_valid(v):
                    kinds[i] = _INT_NHS
            return kinds
    return [_kind(v.strip(), threshold) for v in values]


def _header_kind(cell: str) -> int:
    """Kind of a first-row cell; a lone letter (x, c) is a plausible header there, not a suppression marker."""
    v = cell.strip()
    kind = _kind(v, 1)
    return _TEXT if kind == _EMPTY and len(v) == 1 and v.isalpha() else kind


def _int_value(v: str) -> int:
    """Value of a cell of kind _INT."""
    if "." in v:
        v = v.split(".", 1)[0]
    return int(v.replace(",", "")) if v not in ("", "+", "-") else 0


def nhs_check_digit_valid(digits: str) -> bool:
    """True if `digits` is 10 ASCII digits whose last is the modulus-11 check digit of the first nine."""
    if len(digits) != 10 or not (digits.isdigit() and digits.isascii()):
        return False
    total = sum(int(digits[i]) * (10 - i) for i in range(9))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def is_nhs_number(value: str) -> bool:
    """An NHS number: 10 digits, optionally spaced 3-3-4 with single spaces, with a valid check digit."""
    v = value.strip()
    if _NHS_SPACED.fullmatch(v):
        v = v.replace(" ", "")
    return nhs_check_digit_valid(v)


def is_uk_postcode(value: str) -> bool:
    """A full UK postcode (outward and inward code), space optional, case-insensitive."""
    return _POSTCODE_RE.fullmatch(value.strip()) is not None


def is_date(value: str) -> bool:
    """A full calendar date (with a day): ISO, d/m/y or m/d/y with / - or ., or 01-Jan-1990; time optional."""
    v = value.strip()
    return bool(v) and v[0].isdigit() and _is_date(v)


def _binary_reason(head: bytes) -> str | None:
    """Why the first bytes of a file say it is not delimited text, or None."""
    media = sniff_media_type(head)
    if media not in ("text/plain", "application/octet-stream"):
        return f"content sniffed as {media}"
    if b"\x00" in head:
        return "it contains NUL bytes (a binary file, or text encoded as UTF-16/UTF-32)"
    text = head.decode("utf-8", errors="replace")
    if text:
        bad = text.count("\ufffd") + sum(1 for ch in text if ch < " " and ch not in "\t\n\r\f\v")
        if bad * 10 > len(text) * 3:
            return f"{bad / len(text):.0%} of the characters in its first {len(head)} bytes are not text"
    return None


# ---------------------------------------------------------------- streaming plumbing


class _RecordTooLong(Exception):
    pass


class _Rejoined(io.RawIOBase):
    """A raw reader that serves the already-read head, then the rest of the caller's stream (never closed)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if len(self._head):
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        n = len(data)
        view[:n] = data
        return n


class _Lines:
    """Lines for csv.reader, each read with a bounded size, and no record allowed past `budget` characters."""

    def __init__(self, text: io.TextIOWrapper, budget: int) -> None:
        self._text = text
        self._budget = budget
        self.since_record = 0
        self.record_start_line = 1
        self.line_no = 0
        self.chars = 0
        self.replaced = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(self._budget - self.since_record + 1)
        if not line:
            raise StopIteration
        self.line_no += 1
        self.chars += len(line)
        self.since_record += len(line)
        if self.since_record > self._budget:
            raise _RecordTooLong
        if "\ufffd" in line:
            self.replaced += line.count("\ufffd")
        return line

    def record_done(self) -> None:
        self.since_record = 0
        self.record_start_line = self.line_no + 1


# ---------------------------------------------------------------- per-column statistics


class _Column:
    """What one column's data cells have shown so far (cells arrive a block of rows at a time)."""

    __slots__ = (
        "nonempty", "text", "ints", "nhs", "postcodes", "dates", "count_ok", "negative", "leading_zero",
        "small", "small_rows", "seq_ok", "seq_offset", "nhs_rows", "postcode_rows", "dob_mode", "dob_hits",
        "dob_rows", "cached",
    )

    def __init__(self) -> None:
        self.nonempty = 0
        self.text = 0
        self.ints = 0
        self.nhs = 0
        self.postcodes = 0
        self.dates = 0
        self.count_ok = True  # every non-empty value so far is a non-negative integer without leading zeros
        self.negative = False
        self.leading_zero = False
        self.small = 0
        self.small_rows: array[int] | None = None
        self.seq_ok = True  # every data row so far holds the integer seq_offset + its file row
        self.seq_offset: int | None = None
        self.nhs_rows: array[int] | None = None
        self.postcode_rows: array[int] | None = None
        self.dob_mode = 0  # 1: header names a DOB (keep non-empty cells); 2: header mentions birth (keep dates)
        self.dob_hits = 0
        self.dob_rows: array[int] | None = None
        self.cached = True  # False once the column proved to hold mostly distinct values (ids, measurements)

    def add(self, values: tuple[str, ...], r0: int, scan: _Scan) -> None:
        """Cells of file rows r0, r0+1, ... ("" where a ragged row had no such field)."""
        if self.cached:
            kinds, misses = scan.classify(values)
            if misses * 2 > len(values) >= 64:
                self.cached = False
        else:
            kinds = _classify_block(values, scan.threshold)
        n = len(kinds)
        empty = kinds.count(_EMPTY)
        if empty == n:
            self.seq_ok = False
            return
        nonempty = n - empty
        self.nonempty += nonempty
        self.text += kinds.count(_TEXT)
        small = kinds.count(_INT_SMALL)
        negative = kinds.count(_INT_NEG)
        leading_zero = kinds.count(_INT_LZ)
        int_nhs = kinds.count(_INT_NHS)
        ints = small + kinds.count(_INT) + negative + leading_zero + int_nhs
        self.ints += ints
        if self.count_ok:
            if ints != nonempty:
                self._not_counts(scan)
            elif negative:
                self.negative = True
                self._not_counts(scan)
            elif leading_zero:
                self.leading_zero = True
                self._not_counts(scan)
            elif small:
                self.small += small
                self.small_rows = scan.keep(self.small_rows, kinds, (_INT_SMALL,), r0)
        if self.seq_ok:
            self._sequence(values, kinds, ints, r0)
        nhs = int_nhs + kinds.count(_NHS_OK)
        if nhs:
            self.nhs += nhs
            self.nhs_rows = scan.keep(self.nhs_rows, kinds, (_INT_NHS, _NHS_OK), r0)
        postcodes = kinds.count(_POSTCODE)
        if postcodes:
            self.postcodes += postcodes
            self.postcode_rows = scan.keep(self.postcode_rows, kinds, (_POSTCODE,), r0)
        dates = kinds.count(_DATE)
        self.dates += dates
        if self.dob_mode == 1:
            self.dob_hits += nonempty
            self.dob_rows = scan.keep(self.dob_rows, kinds, _NON_EMPTY_KINDS, r0)
        elif self.dob_mode == 2 and dates:
            self.dob_hits += dates
            self.dob_rows = scan.keep(self.dob_rows, kinds, (_DATE,), r0)

    def _sequence(self, values: tuple[str, ...], kinds: list[int], ints: int, r0: int) -> None:
        if ints != len(kinds) or kinds.count(_INT_SMALL) + kinds.count(_INT) != ints:
            self.seq_ok = False
            return
        numbers = [_int_value(v.strip()) for v in values]
        if self.seq_offset is None:
            self.seq_offset = numbers[0] - r0
        start = self.seq_offset + r0
        self.seq_ok = numbers == list(range(start, start + len(numbers)))

    def _not_counts(self, scan: _Scan) -> None:
        self.count_ok = False
        scan.release(self.small_rows)
        self.small_rows = None


_NON_EMPTY_KINDS = tuple(range(1, 12))


def _dob_mode(header: str) -> int:
    tokens = _tokens(header)
    if not tokens:
        return 0
    norm = _normalised(header)
    if ("dob" in tokens or any(name in norm for name in _DOB_NAMES)) and not _DOB_GROUPING.intersection(tokens):
        return 1
    if _BIRTH_WORDS.intersection(tokens) or "birth" in norm:
        return 2
    return 0


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _label(column: int, name: str) -> str:
    name = name.strip()
    return f"column {column} ({name!r})" if name else f"column {column}"


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_MAX_LISTED_COLUMNS])
    more = len(items) - _MAX_LISTED_COLUMNS
    return shown + (f"; and {more} more" if more > 0 else "")


class _Scan:
    """State of one pass over a table."""

    def __init__(self, policy: TabularPolicy) -> None:
        self.policy = policy
        self.threshold = policy.small_cell_threshold
        self.identifiers = policy.check_identifiers
        self.cap = max(0, policy.max_flags)
        self.budget = max(8 * self.cap, _MIN_CANDIDATE_BUDGET)
        self.columns: list[_Column] = []
        self.first: list[str] | None = None
        self.file_rows = 0
        self.min_fields = 0
        self.max_fields = 0
        self.too_wide = False
        self.error: str | None = None
        self.kinds: dict[str, int] = {}

    def classify(self, values: tuple[str, ...]) -> tuple[list[int], int]:
        """Kinds of raw cell values, and how many were not in the cache of repeated values."""
        cache = self.kinds
        kinds: list[int | None] = list(map(cache.get, values))
        misses = 0
        if None in kinds:
            threshold = self.threshold
            for i, kind in enumerate(kinds):
                if kind is None:
                    raw = values[i]
                    kind = cache.get(raw)  # filled by an earlier cell of this block
                    if kind is None:
                        misses += 1
                        kind = _kind(raw.strip(), threshold)
                        if len(raw) <= _KIND_CACHE_KEY:
                            cache[raw] = kind
                    kinds[i] = kind
        return kinds, misses  # type: ignore[return-value]  # no None is left

    def keep(self, rows: array[int] | None, kinds: list[int], wanted: tuple[int, ...], r0: int) -> array[int] | None:
        """Add the file rows r0+i whose kinds[i] is wanted to a column's candidates, within the caps."""
        current = len(rows) if rows is not None else 0
        if rows is not None and current and r0 < rows[-1]:
            # The first row, examined last once known to be data: it goes in front, even into a full list.
            found = [r0 + i for i, k in enumerate(kinds) if k in wanted]
            merged = sorted([*found, *rows])[: min(self.cap, current + max(0, self.budget))]
            self.budget -= len(merged) - current
            return array("q", merged)
        room = min(self.cap - current, self.budget)
        if room <= 0:
            return rows
        found = [r0 + i for i, k in enumerate(kinds) if k in wanted][:room]
        if not found:
            return rows
        if rows is None:
            rows = array("q")
        rows.extend(found)
        self.budget -= len(found)
        return rows

    def release(self, rows: array[int] | None) -> None:
        if rows is not None:
            self.budget += len(rows)

    def set_first(self, record: list[str]) -> None:
        self.first = record
        self.file_rows = 1
        self.min_fields = self.max_fields = len(record)
        self._widen(len(record))
        if self.identifiers:
            for col, cell in zip(self.columns, record, strict=False):
                col.dob_mode = _dob_mode(cell)

    def add_block(self, block: list[list[str]]) -> None:
        """Records after the first, in file order."""
        if not block:
            return
        r0 = self.file_rows
        self.file_rows += len(block)
        widths = list(map(len, block))
        low, high = min(widths), max(widths)
        self.min_fields = min(self.min_fields, low)
        if high > self.max_fields:
            self.max_fields = high
            self._widen(high)
        columns = zip(*block, strict=False) if low == high else zip_longest(*block, fillvalue="")
        for col, values in zip(self.columns, columns, strict=False):
            col.add(values, r0, self)
        if len(self.kinds) > _KIND_CACHE_SIZE:
            self.kinds.clear()

    def _widen(self, n: int) -> None:
        limit = max(0, self.policy.max_columns)
        if n > limit:
            self.too_wide = True
            n = limit
        while len(self.columns) < n:
            self.columns.append(_Column())

    # ------------------------------------------------------------ conclusions

    def _has_header(self) -> bool:
        first = self.first
        if first is None:
            return False
        kinds = [_header_kind(cell) for cell in first]
        for col, kind in zip(self.columns, kinds, strict=False):
            if kind == _TEXT and col.nonempty > 0 and col.text == 0:
                return True
        filled = [k for k in kinds if k != _EMPTY]
        return bool(filled) and all(k == _TEXT for k in filled)

    def abort(self, reason: str) -> TabularOutcome:
        results = [CheckResult(RULE_PARSE, False, reason)]
        results += [
            CheckResult(rule, False, "not checked: the file is not a readable delimited text table")
            for rule in TABLE_RULES[1:]
        ]
        return TabularOutcome(tuple(results), (), 0, 0, 0)

    def finish(self, lines: _Lines | None) -> TabularOutcome:
        header = self._has_header()
        if not header and self.first is not None:
            for col, cell in zip(self.columns, self.first, strict=False):
                col.dob_mode = 0
                col.add((cell,), 0, self)
        names = list(self.first or []) if header else []
        names += [""] * (len(self.columns) - len(names))
        shift = 1 if header else 0
        data_rows = max(0, self.file_rows - shift)
        incomplete = self.error is not None

        candidates: list[tuple[int, int, str]] = []
        small_result, small_total = self._small_cells(header, names, data_rows, candidates)
        ident_result, ident_total = self._identifiers(names, candidates)
        row_cap = CheckResult(
            RULE_ROW_CAP,
            data_rows <= self.policy.max_rows,
            f"{'at least ' if incomplete else ''}{_plural(data_rows, 'data row')} (cap {self.policy.max_rows:,})",
        )

        total = small_total + ident_total
        candidates.sort()
        flags = tuple(CellFlag(r - shift, c, rule) for r, c, rule in candidates[: self.cap])
        parse = self._parse_result(lines, header, data_rows)
        results = [parse, row_cap, small_result, ident_result]
        if incomplete:
            results = [parse] + [
                r if not r.passed else CheckResult(r.rule_id, False, f"not fully checked: {r.detail}")
                for r in results[1:]
            ]
        if total > len(flags):
            note = f" ({total:,} flagged cells in all; the first {len(flags):,} are listed)"
            results = [
                CheckResult(r.rule_id, r.passed, r.detail + note) if r.rule_id in (RULE_SMALL_CELLS,
                                                                                   RULE_DIRECT_IDENTIFIER)
                and not r.passed else r
                for r in results
            ]
        return TabularOutcome(tuple(results), flags, data_rows, self.max_fields, total)

    def _parse_result(self, lines: _Lines | None, header: bool, data_rows: int) -> CheckResult:
        parts: list[str] = []
        if self.error is not None:
            parts.append(self.error)
        if self.too_wide:
            parts.append(
                f"a row has {self.max_fields:,} fields; only the first {self.policy.max_columns:,} columns "
                "were checked"
            )
        ok = not parts
        if self.file_rows == 0:
            parts.append("empty file: no rows")
        else:
            parts.append(
                f"{_plural(data_rows, 'data row')}, {_plural(self.max_fields, 'column')}, "
                + ("header row detected" if header else "no header row detected")
            )
        if self.min_fields != self.max_fields:
            parts.append(f"ragged: rows have {self.min_fields} to {self.max_fields} fields")
        if lines is not None and lines.replaced:
            parts.append(f"{lines.replaced:,} undecodable bytes or characters replaced (not valid UTF-8)")
        return CheckResult(RULE_PARSE, ok, "; ".join(parts))

    def _small_cells(
        self, header: bool, names: list[str], data_rows: int, out: list[tuple[int, int, str]]
    ) -> tuple[CheckResult, int]:
        first_data_row = 1 if header else 0
        counted: list[str] = []
        excluded: list[str] = []
        total = 0
        for j, col in enumerate(self.columns):
            if col.ints == 0 or col.ints != col.nonempty:
                continue
            reason = self._not_counts_reason(col, names[j], header, data_rows, first_data_row)
            if reason is not None:
                excluded.append(f"{_label(j, names[j])}: {reason}")
                continue
            if col.small:
                total += col.small
                counted.append(f"{_label(j, names[j])}: {_plural(col.small, 'cell')}")
                out.extend((r, j, RULE_SMALL_CELLS) for r in col.small_rows or ())
        limit = self.threshold - 1
        if total:
            detail = (
                f"{_plural(total, 'cell')} with a count from 1 to {limit} (threshold {self.threshold}) in "
                + _listing(counted)
            )
        else:
            n_counts = sum(
                1 for j, col in enumerate(self.columns)
                if col.ints and col.ints == col.nonempty
                and self._not_counts_reason(col, names[j], header, data_rows, first_data_row) is None
            )
            detail = (
                f"no counts from 1 to {limit} in {_plural(n_counts, 'count column')}"
                if n_counts else "no column holds only integer counts"
            )
        if excluded:
            detail += "; integer columns not treated as counts: " + _listing(excluded)
        return CheckResult(RULE_SMALL_CELLS, total == 0, detail), total

    def _not_counts_reason(
        self, col: _Column, name: str, header: bool, data_rows: int, first_data_row: int
    ) -> str | None:
        if col.negative:
            return "negative values"
        if col.leading_zero:
            return "values with leading zeros (codes)"
        if header:
            hits = sorted(_NOT_COUNT_TOKENS.intersection(_tokens(name)))
            if hits:
                return f"header names a {hits[0]}"
            if "%" in name:
                return "header names a percentage"
        if (
            col.seq_ok
            and col.seq_offset is not None
            and data_rows >= 2
            and col.ints == data_rows
            and col.seq_offset + first_data_row in (0, 1)
            and (not header or _normalised(name) in _INDEX_HEADERS)
        ):
            return "a row index (0, 1, 2, ... in row order)"
        return None

    def _identifiers(self, names: list[str], out: list[tuple[int, int, str]]) -> tuple[CheckResult, int]:
        if not self.identifiers:
            return CheckResult(RULE_DIRECT_IDENTIFIER, True, "identifier checks are disabled by the policy"), 0
        found: list[str] = []
        total = 0
        for j, col in enumerate(self.columns):
            label = _label(j, names[j])
            rows: list[array[int] | None] = []
            if col.nhs and col.nhs * 2 > col.nonempty:
                found.append(f"{label}: {col.nhs:,} of {col.nonempty:,} values are NHS numbers with valid check digits")
                total += col.nhs
                rows.append(col.nhs_rows)
            if col.postcodes and col.postcodes * 2 > col.nonempty:
                found.append(f"{label}: {col.postcodes:,} of {col.nonempty:,} values are full UK postcodes")
                total += col.postcodes
                rows.append(col.postcode_rows)
            if col.dob_mode == 1 and col.dob_hits:
                found.append(f"{label}: header names a date of birth ({_plural(col.dob_hits, 'value')})")
                total += col.dob_hits
                rows.append(col.dob_rows)
            elif col.dob_mode == 2 and col.dob_hits and col.dob_hits * 2 > col.nonempty:
                found.append(
                    f"{label}: header mentions birth and {col.dob_hits:,} of {col.nonempty:,} values are dates"
                )
                total += col.dob_hits
                rows.append(col.dob_rows)
            seen: set[int] = set()
            for arr in rows:
                for r in arr or ():
                    if r not in seen:  # one flag per cell even if it matched two ways
                        seen.add(r)
                        out.append((r, j, RULE_DIRECT_IDENTIFIER))
        if found:
            return CheckResult(RULE_DIRECT_IDENTIFIER, False, "direct identifiers: " + _listing(found)), total
        return CheckResult(RULE_DIRECT_IDENTIFIER, True, "no column looks like NHS numbers, dates of birth or "
                                                         "postcodes"), 0


# ---------------------------------------------------------------- entry point


def check_tabular(stream: BinaryIO, delimiter: str, policy: TabularPolicy) -> TabularOutcome:
    """Run the table rules over a CSV/TSV byte stream in one pass. Never raises on bad content.

    The stream is read to its end (or to the first unrecoverable error) but not closed.
    """
    scan = _Scan(policy)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
        return scan.abort(f"invalid delimiter {delimiter!r}: it must be one character other than a quote or newline")
    try:
        head = stream.read(_SNIFF_BYTES)
    except (OSError, ValueError) as exc:
        return scan.abort(f"the file could not be read: {exc}")
    if not isinstance(head, bytes | bytearray):
        return scan.abort("the stream did not yield bytes")
    head = bytes(head)
    reason = _binary_reason(head)
    if reason is not None:
        return scan.abort(f"not a delimited text file: {reason}")

    raw = _Rejoined(head, stream)
    text = io.TextIOWrapper(io.BufferedReader(raw, 1 << 16), encoding="utf-8-sig", errors="replace", newline="")
    lines = _Lines(text, max(1, policy.max_record_chars))
    block: list[list[str]] = []
    mark = 0
    try:
        for record in csv.reader(lines, delimiter=delimiter):
            lines.record_done()
            if not record:
                continue
            if scan.first is None:
                scan.set_first(record)
                mark = lines.chars
                continue
            block.append(record)
            if len(block) >= _BLOCK_ROWS or lines.chars - mark > _BLOCK_CHARS:
                scan.add_block(block)
                block = []
                mark = lines.chars
    except _RecordTooLong:
        scan.error = (
            f"the record starting at line {lines.record_start_line:,} is longer than {policy.max_record_chars:,} "
            "characters (a huge field or an unterminated quote); the rest of the file was not read"
        )
    except csv.Error as exc:
        if "field limit" in str(exc):
            problem = (
                f"a field is longer than the csv module's field size limit of {csv.field_size_limit():,} "
                "characters"
            )
        else:
            problem = f"CSV error: {exc}"
        scan.error = (
            f"{problem} (in the record starting at line {lines.record_start_line:,}); the rest of the file "
            "was not read"
        )
    except (OSError, ValueError, TypeError) as exc:
        scan.error = f"the file could not be read past line {lines.line_no:,}: {exc}"
    finally:
        text.close()
    scan.add_block(block)
    return scan.finish(lines)


# ---------------------------------------------------------------- ACRO

_ACRO_SEVERITY = {"pass": 0, "review": 1, "fail": 2}


def parse_acro_results(data: bytes) -> dict[str, str]:
    """Map each output file named in an ACRO ``results.json`` to ``"pass"``, ``"fail"`` or ``"review"``.

    ACRO (SACRO's output checker; format read from acro 1.0.2's ``Records.finalise_json``, unchanged in
    shape since 0.4.x, which lacks only the ``tool`` block) writes::

        {"version": "1.0.2",
         "tool": {"@type": "SoftwareApplication", "name": "ACRO", ...},      # 1.0.x only
         "results": {
           "output_0": {"uid": "output_0", "status": "fail", "type": "table",
                        "properties": {...}, "files": [{"name": "output_0_0.csv", "sdc": {...}}],
                        "outcome": {...}, "command": "...", "summary": "...", "timestamp": "...",
                        "comments": [...], "exception": "", "fair": {...}}, ...}}

    The status belongs to the output record; each of its ``files`` gets it. File names are relative to
    ACRO's output folder (tables are ``<uid>_<i>.csv``; custom outputs and plots keep their base name).
    Mapping: ``pass``/``fail``/``review`` (any case, spaces trimmed) map to themselves; anything else, or
    a missing status, maps to ``review`` (the checker must look). A researcher's ``exception`` request does
    not change the status: granting it is the human checker's call. A name listed under several records
    gets the most severe status (fail > review > pass). Bad JSON or an unexpected shape gives what could
    be read (possibly ``{}``); this never raises.
    """
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict):
        return {}
    verdicts: dict[str, str] = {}
    for record in results.values():
        if not isinstance(record, dict):
            continue
        status = record.get("status")
        verdict = status.strip().lower() if isinstance(status, str) else ""
        if verdict not in _ACRO_SEVERITY:
            verdict = "review"
        files = record.get("files")
        if not isinstance(files, list):
            continue
        for entry in files:
            name = entry.get("name") if isinstance(entry, dict) else entry
            if not isinstance(name, str) or not name.strip():
                continue
            name = name.strip()
            if _ACRO_SEVERITY[verdict] >= _ACRO_SEVERITY.get(verdicts.get(name, "pass"), 0):
                verdicts[name] = verdict
    return verdicts


def acro_check(file_name: str, verdicts: dict[str, str]) -> CheckResult | None:
    """ACRO's verdict on `file_name` as a check, or None if ACRO did not describe the file.

    `file_name` may be a path: it is matched exactly, then by its base name (ACRO's names are flat).
    Only ``pass`` passes; ``review`` fails the automated check (ACRO itself asks for a human decision).
    """
    verdict = verdicts.get(file_name)
    name = file_name
    if verdict is None:
        name = posixpath.basename(file_name.replace("\\", "/"))
        verdict = verdicts.get(name)
    if verdict is None:
        return None
    if verdict == "pass":
        return CheckResult(RULE_ACRO, True, f"ACRO passed {name!r}")
    if verdict == "fail":
        return CheckResult(RULE_ACRO, False, f"ACRO failed {name!r}: its disclosure checks found a risk")
    return CheckResult(RULE_ACRO, False, f"ACRO asks for human review of {name!r} (status {verdict!r})")
