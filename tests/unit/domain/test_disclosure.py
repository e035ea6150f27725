"""Statistical disclosure checks on tables (streamed) and ACRO's results.json."""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from gateway.domain.disclosure import (  # the block classifier is private; its equivalence is tested here
    RULE_ACRO,
    RULE_DIRECT_IDENTIFIER,
    RULE_PARSE,
    RULE_ROW_CAP,
    RULE_SMALL_CELLS,
    TABLE_RULES,
    CellFlag,
    TabularOutcome,
    TabularPolicy,
    _classify_block,
    _kind,
    acro_check,
    check_tabular,
    is_date,
    is_nhs_number,
    is_uk_postcode,
    parse_acro_results,
)

POLICY = TabularPolicy()


def check(data: bytes | str, delimiter: str = ",", policy: TabularPolicy = POLICY) -> TabularOutcome:
    raw = data.encode() if isinstance(data, str) else data
    return check_tabular(io.BytesIO(raw), delimiter, policy)


def result(outcome: TabularOutcome, rule: str) -> tuple[bool, str]:
    [r] = [r for r in outcome.results if r.rule_id == rule]
    return r.passed, r.detail


def flags(outcome: TabularOutcome, rule: str) -> list[tuple[int, int]]:
    return [(f.row, f.column) for f in outcome.flagged_cells if f.rule_id == rule]


def nhs_number(first_nine: str) -> str | None:
    """Append the modulus-11 check digit (weights 10..2); None where the check digit would be 10 (unusable)."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check_digit = 11 - total % 11
    if check_digit == 11:
        check_digit = 0
    return None if check_digit == 10 else first_nine + str(check_digit)


def valid_nhs_numbers(count: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    out: list[str] = []
    while len(out) < count:
        n = nhs_number(f"{rnd.randint(400_000_000, 799_999_999)}")
        if n is not None:
            out.append(n)
    return out


def with_wrong_check_digit(number: str) -> str:
    return number[:9] + str((int(number[9]) + 1) % 10)


# ---------------------------------------------------------------- outcome shape


def test_results_are_one_per_rule_in_a_stable_order() -> None:
    outcome = check("sex,n\nM,12\nF,15\n")
    assert [r.rule_id for r in outcome.results] == list(TABLE_RULES)
    assert TABLE_RULES == (RULE_PARSE, RULE_ROW_CAP, RULE_SMALL_CELLS, RULE_DIRECT_IDENTIFIER)
    assert outcome.passed
    assert (outcome.rows, outcome.columns, outcome.total_flags, outcome.flagged_cells) == (2, 2, 0, ())


# ---------------------------------------------------------------- small cells


def test_small_count_is_flagged_with_its_row_and_column() -> None:
    outcome = check("region,male,female\nNorth,25,3\nSouth,40,31\n")
    passed, detail = result(outcome, RULE_SMALL_CELLS)
    assert not passed
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 2)]
    assert outcome.flagged_cells == (CellFlag(0, 2, RULE_SMALL_CELLS),)
    assert "column 2 ('female')" in detail and "1 cell" in detail
    assert outcome.total_flags == 1
    assert not outcome.passed


def test_zero_and_counts_at_or_above_the_threshold_pass() -> None:
    outcome = check("region,male,female\nNorth,0,10\nSouth,40,0\nEast,11,100\n")
    passed, detail = result(outcome, RULE_SMALL_CELLS)
    assert passed, detail
    assert "2 count columns" in detail
    assert outcome.flagged_cells == ()


@pytest.mark.parametrize("value, flagged", [(0, False), (1, True), (9, True), (10, False)])
def test_threshold_boundaries(value: int, flagged: bool) -> None:
    outcome = check(f"group,n\na,{value}\nb,50\n")
    assert (flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]) is flagged


def test_threshold_comes_from_the_policy() -> None:
    data = "group,n\na,7\nb,4\n"
    assert flags(check(data, policy=TabularPolicy(small_cell_threshold=5)), RULE_SMALL_CELLS) == [(1, 1)]
    assert flags(check(data, policy=TabularPolicy(small_cell_threshold=1)), RULE_SMALL_CELLS) == []


def test_year_column_is_not_flagged() -> None:
    outcome = check("year,admissions\n2019,3\n2020,25\n2021,40\n")
    passed, detail = result(outcome, RULE_SMALL_CELLS)
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]  # only the count
    assert "column 0 ('year'): header names a year" in detail
    assert not passed


def test_header_less_year_column_is_not_flagged_and_first_row_is_data() -> None:
    outcome = check("2019,3\n2020,25\n")
    assert outcome.rows == 2
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]
    assert "no header row detected" in result(outcome, RULE_PARSE)[1]


def test_header_less_frequency_table_with_labels() -> None:
    outcome = check("Male,3,50\nFemale,12,20\n")
    assert outcome.rows == 2
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]


@pytest.mark.parametrize(
    "header", ["month", "age", "patient_id", "PatientID", "icd_code", "rank", "pct_female", "% male"]
)
def test_headers_naming_non_counts_exclude_the_column(header: str) -> None:
    outcome = check(f"{header},n\n1,20\n2,30\n5,40\n")
    passed, detail = result(outcome, RULE_SMALL_CELLS)
    assert passed, detail
    assert "not treated as counts: column 0" in detail


def test_pandas_row_index_is_not_a_count_column() -> None:
    # DataFrame.to_csv() with its default index: an unnamed first column 0, 1, 2, ...
    outcome = check(",sex,n\n0,F,20\n1,M,3\n2,U,0\n")
    passed, detail = result(outcome, RULE_SMALL_CELLS)
    assert flags(outcome, RULE_SMALL_CELLS) == [(1, 2)]
    assert "column 0: a row index" in detail
    assert not passed


def test_a_named_count_column_that_happens_to_run_1_2_3_is_still_counts() -> None:
    outcome = check("group,n\na,1\nb,2\nc,3\n")
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1), (1, 1), (2, 1)]


def test_columns_with_negative_values_leading_zeros_or_decimals_are_not_counts() -> None:
    outcome = check("change,code,mean,n\n-3,007,2.5,40\n4,012,3.5,50\n")
    passed, detail = result(outcome, RULE_SMALL_CELLS)
    assert passed, detail
    assert "column 0 ('change'): negative values" in detail
    assert "column 1 ('code'): values with leading zeros" in detail


def test_text_in_a_column_makes_it_not_counts_even_if_it_comes_late() -> None:
    rows = "".join(f"g{i},{i % 7 + 1}\n" for i in range(3000))
    outcome = check("group,value\n" + rows + "g,n/a-ish text\n")
    assert result(outcome, RULE_SMALL_CELLS)[0]
    assert outcome.flagged_cells == ()


def test_missing_and_suppression_markers_keep_a_count_column() -> None:
    outcome = check("group,n\na,*\nb,[c]\nc,NA\nd,<10\ne,\nf,4\n")
    assert flags(outcome, RULE_SMALL_CELLS) == [(5, 1)]


def test_integer_valued_decimals_and_thousands_are_counts() -> None:
    outcome = check('group,n\na,3.0\nb,"1,234"\nc,12\n')
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]


def test_max_flags_caps_recorded_cells_but_reports_the_true_count() -> None:
    rows = "".join(f"g{i},{i % 9 + 1}\n" for i in range(50))
    outcome = check("group,n\n" + rows, policy=TabularPolicy(max_flags=10))
    passed, detail = result(outcome, RULE_SMALL_CELLS)
    assert not passed
    assert len(outcome.flagged_cells) == 10
    assert outcome.total_flags == 50
    assert "50 cells" in detail and "50 flagged cells in all; the first 10 are listed" in detail
    assert flags(outcome, RULE_SMALL_CELLS) == [(i, 1) for i in range(10)]  # the first, in row order


def test_max_flags_zero_records_nothing_but_still_fails() -> None:
    outcome = check("group,n\na,3\n", policy=TabularPolicy(max_flags=0))
    assert not result(outcome, RULE_SMALL_CELLS)[0]
    assert outcome.flagged_cells == () and outcome.total_flags == 1


def test_flags_across_rules_are_sorted_by_row_then_column() -> None:
    nhs = valid_nhs_numbers(2)
    outcome = check(f"nhs_number,n\n{nhs[0]},50\n{nhs[1]},4\n")
    assert outcome.flagged_cells == (
        CellFlag(0, 0, RULE_DIRECT_IDENTIFIER),
        CellFlag(1, 0, RULE_DIRECT_IDENTIFIER),
        CellFlag(1, 1, RULE_SMALL_CELLS),
    )


# ---------------------------------------------------------------- direct identifiers


def test_nhs_number_column_is_flagged() -> None:
    numbers = valid_nhs_numbers(5)
    spaced = [f"{n[:3]} {n[3:6]} {n[6:]}" for n in numbers[:2]]
    body = "".join(f"{v},{20 + i}\n" for i, v in enumerate(numbers[2:] + spaced))
    outcome = check("patient,n\n" + body)
    passed, detail = result(outcome, RULE_DIRECT_IDENTIFIER)
    assert not passed
    assert "column 0 ('patient'): 5 of 5 values are NHS numbers" in detail
    assert flags(outcome, RULE_DIRECT_IDENTIFIER) == [(i, 0) for i in range(5)]


def test_ten_digit_numbers_with_invalid_check_digits_are_not_flagged() -> None:
    wrong = [with_wrong_check_digit(n) for n in valid_nhs_numbers(6)]
    assert not any(is_nhs_number(n) for n in wrong)
    outcome = check("ref,n\n" + "".join(f"{n},20\n" for n in wrong))
    assert result(outcome, RULE_DIRECT_IDENTIFIER)[0]
    assert flags(outcome, RULE_DIRECT_IDENTIFIER) == []


def test_known_nhs_number_and_helpers() -> None:
    assert is_nhs_number("9434765919") and is_nhs_number("943 476 5919")
    assert not is_nhs_number("9434765918")
    assert not is_nhs_number("943-476-5919") and not is_nhs_number("94347659190")


def test_dob_header_is_flagged() -> None:
    outcome = check("id_hash,dob,n\nab12,1990-02-03,20\ncd34,02/11/1985,30\n")
    passed, detail = result(outcome, RULE_DIRECT_IDENTIFIER)
    assert not passed
    assert "column 1 ('dob'): header names a date of birth" in detail
    assert flags(outcome, RULE_DIRECT_IDENTIFIER) == [(0, 1), (1, 1)]


@pytest.mark.parametrize("header", ["DOB", "date_of_birth", "Date of Birth", "birth_date", "PatientDOB", "birthdate"])
def test_dob_header_spellings(header: str) -> None:
    assert not result(check(f"name,{header}\nx,1970\n"), RULE_DIRECT_IDENTIFIER)[0]


def test_dates_under_a_header_mentioning_birth_are_flagged() -> None:
    outcome = check("mother_birth,n\n1981-05-06,20\n12-Mar-1979,30\n")
    passed, detail = result(outcome, RULE_DIRECT_IDENTIFIER)
    assert not passed and "header mentions birth" in detail
    assert flags(outcome, RULE_DIRECT_IDENTIFIER) == [(0, 0), (1, 0)]


@pytest.mark.parametrize(
    "table",
    [
        "year_of_birth,n\n1980,20\n1981,30\n",  # year of birth: a quasi-identifier, not a direct one
        "dob_year,n\n1980,20\n1981,30\n",  # a grouping
        "admission_date,n\n2020-01-02,20\n2020-01-03,30\n",  # dates, but not births
        "2020-01-02,20\n2020-01-03,30\n",  # header-less dates
    ],
)
def test_non_dob_dates_and_birth_years_are_not_flagged(table: str) -> None:
    passed, detail = result(check(table), RULE_DIRECT_IDENTIFIER)
    assert passed, detail


def test_postcode_column_is_flagged() -> None:
    outcome = check("name,postcode\nA,SW1A 1AA\nB,M1 1AE\nC,ls14ap\nD,\nE,CR2 6XH\n")
    passed, detail = result(outcome, RULE_DIRECT_IDENTIFIER)
    assert not passed
    assert "column 1 ('postcode'): 4 of 4 values are full UK postcodes" in detail
    assert flags(outcome, RULE_DIRECT_IDENTIFIER) == [(0, 1), (1, 1), (2, 1), (4, 1)]


def test_postcode_districts_and_a_minority_of_postcodes_are_not_flagged() -> None:
    assert result(check("district,n\nSW1A,20\nM1,30\nLS1,40\n"), RULE_DIRECT_IDENTIFIER)[0]
    minority = check("note,n\nSW1A 1AA,20\nfoo,30\nbar,40\n")
    assert result(minority, RULE_DIRECT_IDENTIFIER)[0]
    assert flags(minority, RULE_DIRECT_IDENTIFIER) == []


def test_value_helpers() -> None:
    assert is_uk_postcode("EC1A 1BB") and is_uk_postcode("w1a0ax") and not is_uk_postcode("SW1A")
    assert not is_uk_postcode("QA1 1AA")  # Q never starts a postcode
    assert is_date("1990-02-03") and is_date("03/02/1990") and is_date("1 Jan 1990") and is_date("1990-02-03T10:00:00Z")
    assert not is_date("1990") and not is_date("1990-13-40") and not is_date("3.5")


def test_identifier_checks_can_be_disabled() -> None:
    outcome = check("dob,postcode\n1990-01-01,SW1A 1AA\n", policy=TabularPolicy(check_identifiers=False))
    passed, detail = result(outcome, RULE_DIRECT_IDENTIFIER)
    assert passed and "disabled" in detail
    assert outcome.flagged_cells == ()


# ---------------------------------------------------------------- row cap


def test_row_cap() -> None:
    table = "group,n\n" + "".join(f"g{i},{20 + i}\n" for i in range(6))
    over = check(table, policy=TabularPolicy(max_rows=5))
    passed, detail = result(over, RULE_ROW_CAP)
    assert not passed and "6 data rows (cap 5)" in detail
    assert over.rows == 6
    assert result(check(table, policy=TabularPolicy(max_rows=6)), RULE_ROW_CAP)[0]


# ---------------------------------------------------------------- robustness


def test_empty_file() -> None:
    outcome = check(b"")
    assert outcome.passed
    assert (outcome.rows, outcome.columns) == (0, 0)
    assert "empty file" in result(outcome, RULE_PARSE)[1]


def test_header_only_and_blank_lines() -> None:
    outcome = check("sex,n\n")
    assert outcome.passed and outcome.rows == 0
    blank = check("sex,n\n\nM,3\n\n\nF,20\n")
    assert blank.rows == 2
    assert flags(blank, RULE_SMALL_CELLS) == [(0, 1)]  # blank lines are not rows


def test_ragged_rows() -> None:
    outcome = check("group,a,b\ng1,20,30\ng2,4\ng3,40,50,6,extra\ng4\n")
    passed, detail = result(outcome, RULE_PARSE)
    assert passed
    assert "ragged: rows have 1 to 5 fields" in detail
    assert outcome.columns == 5 and outcome.rows == 4
    assert flags(outcome, RULE_SMALL_CELLS) == [(1, 1), (2, 3)]


def test_bom_quoted_fields_and_crlf() -> None:
    data = b'\xef\xbb\xbf"group","n"\r\n"a, with comma",3\r\n"multi\nline ""quoted""",40\r\n'
    outcome = check(data)
    assert outcome.rows == 2
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]
    assert "column 1 ('n')" in result(outcome, RULE_SMALL_CELLS)[1]  # the BOM did not stick to the header


def test_tsv_via_tab_delimiter() -> None:
    data = "group\tn\tpostcode\na, b\t3\tSW1A 1AA\nc\t40\tM1 1AE\n"
    outcome = check(data, "\t")
    assert outcome.columns == 3
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]
    assert flags(outcome, RULE_DIRECT_IDENTIFIER) == [(0, 2), (1, 2)]
    # the same bytes read as CSV are a different (and wrong) table
    assert check(data, ",").columns == 2


def test_non_utf8_bytes_are_replaced_and_counted() -> None:
    data = "caf\xe9,n\nna\xefve,3\ncr\xe8me,40\n".encode("latin-1")
    outcome = check(data)
    passed, detail = result(outcome, RULE_PARSE)
    assert passed
    assert "3 undecodable bytes or characters replaced" in detail
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]


@pytest.mark.parametrize(
    "data, why",
    [
        (b"PK\x03\x04\x14\x00\x00\x00rest-of-a-zip", "application/zip"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\x00\x01\x02binary\x00", "NUL bytes"),
        ("sex,n\nM,3\n".encode("utf-16"), "NUL bytes"),
        (bytes(random.Random(3).randrange(0x80, 0x100) for _ in range(4096)), "are not text"),
    ],
)
def test_binary_files_fail_parse_without_raising(data: bytes, why: str) -> None:
    outcome = check(data)
    passed, detail = result(outcome, RULE_PARSE)
    assert not passed
    assert detail.startswith("not a delimited text file") and why in detail
    assert not any(r.passed for r in outcome.results)  # nothing can pass unchecked
    assert outcome.flagged_cells == ()


def test_two_megabyte_field_fails_parse_with_bounded_memory() -> None:
    data = b'group,n\na,3\nb,"' + b"x" * (2 << 20) + b'"\nc,4\n'
    stream = io.BytesIO(data)
    tracemalloc.start()
    try:
        outcome = check_tabular(stream, ",", POLICY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    passed, detail = result(outcome, RULE_PARSE)
    assert not passed
    assert "record starting at line 3 is longer than 1,048,576 characters" in detail
    assert peak < 8 << 20  # the 2 MiB field is never held whole (a str of it alone would be 2 MiB+)
    # what was read before the failure is still reported; nothing passes as if the file were checked
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 1)]
    assert not any(r.passed for r in outcome.results)
    assert "not fully checked" in result(outcome, RULE_DIRECT_IDENTIFIER)[1]


def test_field_over_the_csv_modules_limit_is_reported_not_raised() -> None:
    data = b'group,note\na,"' + b"y" * 200_000 + b'"\n'
    outcome = check(data)
    passed, detail = result(outcome, RULE_PARSE)
    assert not passed
    assert "field size limit of 131,072 characters" in detail
    assert csv.field_size_limit() == 131_072  # the check did not change the process-wide limit


def test_a_process_that_raised_the_csv_limit_gets_large_fields_read() -> None:
    data = b'group,note,n\na,"' + b"y" * 200_000 + b'",3\n'
    old = csv.field_size_limit(1 << 20)
    try:
        outcome = check(data)
    finally:
        csv.field_size_limit(old)
    assert result(outcome, RULE_PARSE)[0]
    assert flags(outcome, RULE_SMALL_CELLS) == [(0, 2)]


def test_unterminated_quote_is_caught_by_the_record_budget() -> None:
    data = 'group,n\na,"unterminated\n' + "".join(f"g{i},{i}\n" for i in range(1000))
    outcome = check(data, policy=TabularPolicy(max_record_chars=4096))
    passed, detail = result(outcome, RULE_PARSE)
    assert not passed and "unterminated quote" in detail and "line 2" in detail


def test_too_many_columns_fail_parse_but_the_rest_is_checked() -> None:
    outcome = check("a,b,c,d\n20,30,3,40\n", policy=TabularPolicy(max_columns=2))
    passed, detail = result(outcome, RULE_PARSE)
    assert not passed and "only the first 2 columns were checked" in detail
    assert outcome.columns == 4


@pytest.mark.parametrize("delimiter", ["", ",,", '"', "\n"])
def test_invalid_delimiter_is_a_failed_check(delimiter: str) -> None:
    passed, detail = result(check("a,b\n1,2\n", delimiter), RULE_PARSE)
    assert not passed and "invalid delimiter" in detail


class _Failing(io.RawIOBase):
    """Serves some CSV, then fails as a broken disk or network would."""

    def __init__(self) -> None:
        self.served = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.served:
            raise OSError("device went away")
        data = b"group,n\n" + b"".join(b"g,%d\n" % (20 + i) for i in range(5000))
        self.served = True
        n = min(len(buffer), len(data))
        buffer[:n] = data[:n]
        return n


def test_read_errors_are_reported_not_raised() -> None:
    outcome = check_tabular(_Failing(), ",", POLICY)  # type: ignore[arg-type]
    passed, detail = result(outcome, RULE_PARSE)
    assert not passed and "device went away" in detail


def test_callers_stream_is_left_open() -> None:
    stream = io.BytesIO(b"sex,n\nM,30\n")
    check_tabular(stream, ",", POLICY)
    assert not stream.closed


class _Generated(io.RawIOBase):
    """A CSV of `rows` rows made on the fly, so the test itself never holds the file."""

    def __init__(self, rows: int) -> None:
        self._rows = iter(range(rows))
        self._pending = b"area,sex,year,n,mean\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self._pending) < len(buffer):
            chunk = [f"E{i:08d},{'MF'[i % 2]},{2015 + i % 8},{10 + i % 500},{i % 97}.{i % 10}\n"
                     for _, i in zip(range(512), self._rows, strict=False)]
            if not chunk:
                break
            self._pending += "".join(chunk).encode()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def test_memory_does_not_grow_with_rows() -> None:
    def peak(rows: int) -> int:
        tracemalloc.start()
        try:
            outcome = check_tabular(_Generated(rows), ",", POLICY)  # type: ignore[arg-type]
            assert outcome.rows == rows and outcome.passed, outcome.results
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(2_000), peak(30_000)  # ~70 KB vs ~1 MB of CSV; the peak is ~0.7 MB either way
    assert large < small + (256 << 10), (small, large)


# ---------------------------------------------------------------- the block classifier (a speed path)

CELL_SHAPES = [
    "12.345", "-0.5", "+1.25", ".5", "-.5", "50.000", "3.", "1e5", "1,234", "1,234.5",  # decimals and near misses
    "0", "3", "9", "10", "12345", "007", "-3", "+4", "9434765919", "9434765918", "943 476 5919",  # integers
    "E01234567", "abcdefghijk", "abcdefghij", "Suppressed", "SUPPRESSED", "x1234567", "abc def ghi ",  # text
    "SW1A 1AA", "SW1A1AA1", "M1 1AE", "N/A", "na", "x", "<10", "", " ", " 12.5", "12.5 ", "2020-01-02",
    "01-Jan-1990", "Ærøskøbing town", "١٢٣",
]


@pytest.mark.parametrize("threshold", [10, 1, 100])
def test_block_classifier_agrees_with_the_cell_classifier(threshold: int) -> None:
    rnd = random.Random(threshold)
    blocks: list[tuple[str, ...]] = [(base,) * 200 + (odd,) for base in CELL_SHAPES for odd in CELL_SHAPES]
    blocks += [tuple(rnd.choice(CELL_SHAPES) for _ in range(50)) for _ in range(200)]
    blocks += [("12.5", "1.5\n2.5"), ("1", "2\n3")]  # a quoted newline inside a cell
    for values in blocks:
        assert _classify_block(values, threshold) == [_kind(v.strip(), threshold) for v in values], values[-2:]


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (rather than hang) if the block takes longer; the regex engine checks for signals."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_almost_uniform_blocks_cost_linear_time() -> None:
    # Each column is one shape except a last cell that breaks it: a block regex that could backtrack
    # would take exponential time here (this hung before the block patterns were made atomic).
    rows = [f"E0{1_000_000 + i},{i % 97}.{i % 89 + 11},{1000 + i}\n" for i in range(3000)]
    rows.append("abcdefghijk ,50.000,007\n")
    start = time.perf_counter()
    with deadline(20):
        outcome = check("area,rate,n\n" + "".join(rows))
    assert outcome.rows == 3001 and time.perf_counter() - start < 20
    assert "column 2 ('n'): values with leading zeros" in result(outcome, RULE_SMALL_CELLS)[1]


# ---------------------------------------------------------------- ACRO

# The shape of results.json as written by acro 1.0.2 (acro/record.py, Records.finalise_json): top-level
# "version", "tool" and "results"; one record per output keyed by uid, with "status" and a "files" list of
# {"name", "sdc"}. Table files are named <uid>_<i>.csv; custom outputs keep their base name.
ACRO_RESULTS = {
    "version": "1.0.2",
    "tool": {"@type": "SoftwareApplication", "name": "ACRO", "url": "https://github.com/AI-SDC/ACRO",
             "version": "1.0.2"},
    "results": {
        "output_0": {
            "uid": "output_0",
            "status": "fail",
            "type": "table",
            "properties": {"method": "crosstab", "mitigation": "none"},
            "files": [{
                "name": "output_0_0.csv",
                "sdc": {"summary": {"MinimumThresholdCheck": 2, "PPercentCheck": 0},
                        "cells": {"MinimumThresholdCheck": [[0, 1], [2, 3]], "PPercentCheck": []}},
            }],
            "outcome": {"R": {"G": "threshold; ", "H": "ok"}},
            "command": "safe_table = acro.crosstab(df.recommend, df.parents)",
            "summary": "crosstab : \nMinimumThresholdCheck: fail - 2 cells may need suppressing.\n",
            "timestamp": "2026-01-05T10:00:00.000000",
            "comments": [],
            "exception": "",
            "fair": {"check_status": {"MinimumThresholdCheck": "fail", "PPercentCheck": "pass"}},
        },
        "output_1": {
            "uid": "output_1", "status": "pass", "type": "table", "properties": {"method": "pivot_table"},
            "files": [{"name": "output_1_0.csv", "sdc": {"summary": {}, "cells": {}}},
                      {"name": "output_1_1.csv", "sdc": {"summary": {}, "cells": {}}}],
            "outcome": {}, "command": "acro.pivot_table(...)", "summary": "pass", "timestamp": "",
            "comments": [], "exception": "", "fair": {},
        },
        "output_2": {
            "uid": "output_2", "status": "review", "type": "custom", "properties": {},
            "files": [{"name": "survival.png", "sdc": {}}],
            "outcome": {}, "command": "custom", "summary": "review", "timestamp": "",
            "comments": ["a plot"], "exception": "", "fair": {},
        },
        "output_3": {  # ACRO's own "Review" (capitalised) for an analysis its ontology does not know
            "uid": "output_3", "status": "Review", "type": "table", "files": [{"name": "output_3_0.csv", "sdc": {}}],
        },
        "output_4": {"uid": "output_4", "status": "maybe", "files": [{"name": "output_4_0.csv", "sdc": {}}]},
        "output_5": {"uid": "output_5", "files": [{"name": "output_5_0.csv", "sdc": {}}]},  # no status
        "output_6": {  # the researcher asked for an exception: still fail until a human grants it
            "uid": "output_6", "status": "fail", "exception": "these are national totals",
            "files": [{"name": "output_6_0.csv", "sdc": {}}],
        },
        "output_7": {"uid": "output_7", "status": "pass", "files": []},
        "output_8": {"uid": "output_8", "status": "pass"},
        "output_9": "not a record",
    },
}


def test_parse_acro_results_real_shape() -> None:
    verdicts = parse_acro_results(json.dumps(ACRO_RESULTS, indent=4).encode())
    assert verdicts == {
        "output_0_0.csv": "fail",
        "output_1_0.csv": "pass",
        "output_1_1.csv": "pass",
        "survival.png": "review",
        "output_3_0.csv": "review",
        "output_4_0.csv": "review",
        "output_5_0.csv": "review",
        "output_6_0.csv": "fail",
    }


def test_parse_acro_results_without_the_1_0_tool_block() -> None:
    # acro 0.4.x wrote the same records without "tool"
    legacy = {"version": "0.4.5", "results": {"output_0": ACRO_RESULTS["results"]["output_1"]}}  # type: ignore[index]
    assert parse_acro_results(json.dumps(legacy).encode()) == {"output_1_0.csv": "pass", "output_1_1.csv": "pass"}


def test_a_file_named_by_several_records_gets_the_most_severe_status() -> None:
    doc = {"results": {
        "a": {"status": "pass", "files": [{"name": "shared.png"}]},
        "b": {"status": "fail", "files": [{"name": "shared.png"}]},
        "c": {"status": "review", "files": [{"name": "shared.png"}, {"name": "other.png"}]},
        "d": {"status": "pass", "files": [{"name": "other.png"}]},
    }}
    assert parse_acro_results(json.dumps(doc).encode()) == {"shared.png": "fail", "other.png": "review"}


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"\xff\xfe", b"[]", b'{"results": []}', b'{"version": "1.0.2"}', b"[" * 100_000, b"null"],
)
def test_parse_acro_results_never_raises(data: bytes) -> None:
    assert parse_acro_results(data) == {}


def test_acro_check() -> None:
    verdicts = parse_acro_results(json.dumps(ACRO_RESULTS).encode())
    passed = acro_check("output_1_0.csv", verdicts)
    assert passed is not None and passed.rule_id == RULE_ACRO and passed.passed
    failed = acro_check("/outputs/acro/output_0_0.csv", verdicts)  # matched by base name
    assert failed is not None and not failed.passed and "output_0_0.csv" in failed.detail
    review = acro_check("survival.png", verdicts)
    assert review is not None and not review.passed and "human review" in review.detail
    assert acro_check("results.json", verdicts) is None
    assert acro_check("anything.csv", {}) is None
