"""``reconciler demo --shadow``'s seed (last night's Database-method enrolments beside the
manual instance, the methods report) and how it prints long reports."""

from __future__ import annotations

from streams.demo.shadow import REPORT_ID, database_seed, excerpt
from streams.workload.generator import generate_year
from streams.workload.oracle import expected_from_rows
from streams.workload.rows import Tables


def test_every_course_holds_last_nights_database_enrolments_beside_a_manual_instance() -> None:
    year = generate_year(60, seed=3)
    seed = database_seed(year, "0" * 32)
    load = Tables().apply_all(year.initial_load())
    expected = expected_from_rows(
        load.values("individu"),
        load.values("ins_adm_etp"),
        load.values("ind_contrat_elp"),
        year.cod_ind_range,
    )
    ids = {u["idnumber"]: u["id"] for u in seed["users"] if u.get("idnumber")}
    held = {
        (c["idnumber"], uid)
        for c in seed["courses"]
        for i in c["instances"]
        if i["enrol"] == "database"
        for uid in i["enrolments"]
    }
    assert all(
        [i["enrol"] for i in c["instances"]] == ["manual", "database"] for c in seed["courses"]
    )
    wanted = {(c, ids[u]) for c, u in expected if u in ids}
    covered = len(wanted & held) / len(wanted)
    assert 0.9 < covered < 1, "some students enrolled since last night's sync: missing"
    assert held - wanted, "stale enrolments the sync keeps: extra"
    assert seed["reports"] == [{"id": REPORT_ID, "name": "Enrolment methods"}]
    service = next(u for u in seed["users"] if u["id"] == seed["tokens"][0]["userid"])
    assert "moodle/reportbuilder:view" in service["capabilities"]


def test_a_long_report_is_printed_with_its_first_courses_and_its_total() -> None:
    rows = [f"C{i}  {i}" for i in range(10)]
    text = "\n".join(["title", "course  n", "------  -", *rows, "total   45", "", "legend"])
    assert excerpt(text, rows=3) == [
        "title",
        "course  n",
        "------  -",
        "C0  0",
        "C1  1",
        "C2  2",
        "… 7 more course(s)",
        "total   45",
        "",
        "legend",
    ]
