"""The generated APOGÉE year: deterministic, plausible, the sizes it says, fit for the schema."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from streams.workload.generator import COD_IND_BASE, Part, generate_year
from streams.workload.rows import COLUMNS, STUDENT_TABLES, Insert, Tables
from streams.workload.university import catalogue

# VARCHAR2 widths of connectors/apogee-schema.sql
WIDTHS = {
    "cod_etp": 6, "cod_elp": 8, "cod_lse": 8, "cod_dip": 7, "cod_anu": 4, "eta_iae": 1,
    "eta_pmt_iae": 1, "tem_iae_prm": 1, "tem_prc_ice": 1, "lib_nom_pat_ind": 30,
    "lib_nom_usu_ind": 30, "lib_pr1_ind": 20, "cod_nne_ind": 10, "lib_elp": 60, "lic_elp": 25,
    "cod_nel": 4, "cod_cmp": 3, "lib_web_vet": 120,
}  # fmt: skip


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a, b = generate_year(300, seed=11), generate_year(300, seed=11)
    assert a == b
    assert a.initial_load() == b.initial_load()
    c = generate_year(300, seed=12)
    assert c.initial_load() != a.initial_load()
    assert a.cod_ind_range == (COD_IND_BASE + 1, COD_IND_BASE + 300)


def test_row_counts() -> None:
    year = generate_year(1000, seed=5)
    tables = year.tables()
    assert len(tables.rows["individu"]) == 1000
    contracts = [c for s in year.students for c in s.contracts]
    assert len(tables.rows["ins_adm_etp"]) == len(contracts)
    assert 1000 < len(contracts) < 1100  # a few double enrolments
    assert len(tables.rows["ind_contrat_elp"]) == 25 * len(contracts)
    per_student = Counter(
        r["cod_ind"] for r in tables.values("ind_contrat_elp") if r["tem_prc_ice"] == "N"
    )
    assert min(per_student.values()) >= 21  # repeaters have 2-4 elements acquired ('O')
    acquired = [r for r in tables.values("ind_contrat_elp") if r["tem_prc_ice"] == "O"]
    assert 0 < len(acquired) < 0.02 * len(tables.rows["ind_contrat_elp"])
    assert all(r["eta_iae"] == "E" for r in tables.values("ins_adm_etp"))


def test_every_student_plays_one_part_and_two_are_special() -> None:
    year = generate_year(50, seed=1)
    parts = Counter(s.part for s in year.students)
    assert parts[Part.LATE_NUMBER] == 1 and parts[Part.NOT_IN_MOODLE] == 1
    late = year.student(Part.LATE_NUMBER)
    assert year.tables().rows["individu"][(late.cod_ind,)]["cod_etu"] is None


def test_codes_fit_the_schema_and_the_catalogue() -> None:
    year = generate_year(500, seed=3)
    uni = catalogue()
    stages = {s.cod_etp: s for s in uni.stages}
    rows = year.tables()
    for table in STUDENT_TABLES:
        for row in rows.values(table):
            assert set(row) == set(COLUMNS[table])
            for column, width in WIDTHS.items():
                if isinstance(row.get(column), str):
                    assert len(row[column]) <= width, (table, column, row[column])
    for row in rows.values("ind_contrat_elp"):
        stage = stages[row["cod_etp"]]
        assert row["cod_elp"] in stage.elements
        assert row["cod_lse"] == stage.list_of(row["cod_elp"])
    for table, reference in year.reference_rows().items():
        for row in reference:
            assert set(row) == set(COLUMNS[table])
            for column, width in WIDTHS.items():
                if isinstance(row.get(column), str):
                    assert len(row[column]) <= width, (table, column, row[column])
    assert re.fullmatch(r"[A-Z]{3}\d{3}", next(iter(uni.elements)))


def test_student_numbers_unique_eight_digits_and_ine_ten_chars() -> None:
    year = generate_year(2000, seed=9)
    numbers = [s.cod_etu for s in year.students]
    assert len(set(numbers)) == len(numbers)
    assert all(10_000_000 <= n <= 99_999_999 for n in numbers)
    assert all(len(s.ine) == 10 for s in year.students)
    assert len({s.cod_ind for s in year.students}) == 2000


def test_contract_per_stage_is_mandatory_options_and_shared() -> None:
    year = generate_year(200, seed=2)
    for student in year.students:
        for contract in student.contracts:
            stage = catalogue().stage(contract.cod_etp)
            codes = [elp for elp, _, _ in contract.elements]
            assert len(codes) == len(set(codes)) == 25
            assert set(stage.mandatory) <= set(codes) and set(stage.shared) <= set(codes)
            assert len(set(codes) & set(stage.first_list)) == 1
            assert len(set(codes) & set(stage.second_list)) == 2


def test_initial_load_is_whole_students_in_transactions_of_a_few_thousand_rows() -> None:
    year = generate_year(800, seed=4)
    batches = year.initial_load(batch_rows=5000)
    assert all(5000 <= len(tx) < 5000 + 60 for tx in batches[:-1])
    seen: set[int] = set()
    for tx in batches:
        people = {op.row["cod_ind"] for op in tx if isinstance(op, Insert)}
        assert not people & seen  # a student's rows never span two transactions
        seen |= people
    tables = Tables().apply_all(batches)  # raises on a duplicate primary key
    assert len(tables.rows["individu"]) == 800


def test_intake_follows_the_weights() -> None:
    year = generate_year(5000, seed=8)
    by_stage = Counter(s.contracts[0].cod_etp for s in year.students)
    assert by_stage["L1DROI"] > by_stage["L3MATH"] * 2  # 12 vs 3
    assert set(by_stage) == {s.cod_etp for s in catalogue().stages}


@pytest.mark.parametrize("students", [1, 100_000])
def test_sizes_out_of_range_are_refused(students: int) -> None:
    with pytest.raises(ValueError, match="students must be between"):
        generate_year(students)
