"""Domain benchmark: folds/s, plans/s at 1 M contract rows; memory per 100,000 desired enrolments.

Not a test. Run: ``.venv/bin/python bench/bench_domain.py [--students 40000 --elements 25]``.
One process, one core. Targets (issue 3): >= 50,000 changes folded/s; <= 100 MB per
100,000 desired enrolments held in memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from pydantic import TypeAdapter

from schemas.debezium import Table
from schemas.facts import MembershipFact
from schemas.lineage import SourceRef
from streams.domain.changes import AdminEnrolment, ContractElement, Person, RowChange
from streams.domain.desired import (
    CourseChange,
    CourseDesired,
    apply_change,
    apply_changes,
    empty_desired,
    route,
)
from streams.domain.fold import Effect, fold
from streams.domain.ingest import KafkaRef, decode
from streams.domain.ledger import apply_all, empty_ledger
from streams.domain.mapping import build_mapping
from streams.domain.plan import plan
from streams.domain.policy import FoldPolicy, PlanPolicy
from streams.domain.student import StudentState, empty_student

NOW = datetime(2026, 9, 1, 8, 0)
T = TypeVar("T")


def timed(label: str, unit: str, count: int, work: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    print(
        f"{label:<46} {count:>10,} {unit:<9} {seconds:7.2f} s  {count / seconds:>10,.0f} {unit}/s"
    )
    return result


def workload(students: int, elements: int, pool: int, seed: int = 7) -> Iterator[RowChange]:
    """Per student: INDIVIDU, one valid INS_ADM_ETP, ``elements`` IND_CONTRAT_ELP rows."""
    rng, lsn = random.Random(seed), 1_000_000
    for ind in range(1, students + 1):
        group = ("2026", f"ETP{ind % 400:03d}", 1)
        for table, item, values in (
            (Table.INDIVIDU, None, Person(str(21_000_000 + ind))),
            (Table.INS_ADM_ETP, 1, AdminEnrolment("E", "P")),
            *(
                (Table.IND_CONTRAT_ELP, f"ELP{e:05d}", ContractElement("N"))
                for e in rng.sample(range(pool), elements)
            ),
        ):
            lsn += 1
            key = f"{ind}" if item is None else f"2026|{ind}|{group[1]}|1|{item}"
            ref = SourceRef(
                table.value,
                key,
                lsn,
                str(lsn // 30),
                None,
                0,
                False,
                1_788_000_000_000,
                f"apogee.apogee.{table.value.lower()}",
                ind % 6,
                lsn,
            )
            yield RowChange(table, ind, None if item is None else group, item, values, ref)


def fold_everything(changes: list[RowChange]) -> tuple[dict[int, StudentState], list[Effect]]:
    policy, states, effects = FoldPolicy(), {}, []
    for change in changes:
        state = states.get(change.cod_ind) or empty_student(change.cod_ind)
        states[change.cod_ind], out = fold(state, change, policy)
        effects.extend(out)
    return states, effects


def build_desired(changes: list[CourseChange]) -> dict[str, CourseDesired]:
    courses: dict[str, CourseDesired] = {}
    for change in changes:
        desired = courses.get(change.course) or empty_desired(change.course)
        courses[change.course] = apply_change(desired, change, NOW)
    return courses


def build_desired_batched(changes: tuple[CourseChange, ...]) -> dict[str, CourseDesired]:
    batches: dict[str, list[CourseChange]] = {}
    for change in changes:
        batches.setdefault(change.course, []).append(change)
    return {c: apply_changes(empty_desired(c), batch, NOW) for c, batch in batches.items()}


def debezium_json(change: RowChange) -> bytes:
    row: dict[str, Any] = {"cod_ind": change.cod_ind}
    if change.group is not None:
        row |= {"cod_anu": "2026", "cod_etp": change.group[1], "cod_vrs_vet": 1}
        row |= (
            {"num_occ_iae": change.item, "eta_iae": "E"}
            if change.item == 1
            else {"cod_elp": change.item, "tem_prc_ice": "N"}
        )
    else:
        row["cod_etu"] = 21_000_000 + change.cod_ind
    source = {
        "connector": "postgresql",
        "lsn": change.ref.log,
        "txId": 5,
        "ts_ms": 1,
        "snapshot": "false",
        "table": change.table.value.lower(),
    }
    return json.dumps({"op": "c", "before": None, "after": row, "source": source}).encode()


def bench_ingest(changes: list[RowChange]) -> None:
    sample = changes[:100_000]
    records = [(f"apogee.apogee.{c.table.value.lower()}", debezium_json(c)) for c in sample]

    def run() -> int:
        policy, states = FoldPolicy(), {}
        for topic, value in records:
            decoded = decode(topic, value, KafkaRef(topic, 0, 0))
            assert isinstance(decoded, tuple)
            for change in decoded:
                state = states.get(change.cod_ind) or empty_student(change.cod_ind)
                states[change.cod_ind], _ = fold(state, change, policy)
        return len(states)

    timed("decode JSON + fold (Debezium records)", "changes", len(records), run)


def memory_per_100k(course_changes: list[CourseChange]) -> None:
    """Desired state for 100,000 enrolments whose facts arrived over Kafka (no sharing)."""
    adapter = TypeAdapter(MembershipFact)
    wire = [(c.course, c.role, adapter.dump_json(c.fact)) for c in course_changes[:100_000]]
    gc.collect()
    tracemalloc.start()
    arrived = [
        CourseChange(course, role, adapter.validate_json(raw), True) for course, role, raw in wire
    ]
    courses = build_desired(arrived)
    del arrived
    gc.collect()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = sum(len(d.entries) for d in courses.values())
    print(
        f"{'memory: desired state, facts with provenance':<46} {held:>10,} enrolments "
        f"{size / 1e6:7.1f} MB  = {size / held * 100_000 / 1e6:.1f} MB per 100,000"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=40_000)
    parser.add_argument("--elements", type=int, default=25)
    parser.add_argument("--pool", type=int, default=5_000, help="distinct elements (= courses)")
    args = parser.parse_args()
    changes = list(workload(args.students, args.elements, args.pool))
    rows = args.students * args.elements
    print(
        f"workload: {args.students:,} students x {args.elements} elements = {rows:,} contract "
        f"rows, {len(changes):,} changes, {args.pool:,} courses\n"
    )
    states, effects = timed(
        "fold (row changes -> facts)", "changes", len(changes), lambda: fold_everything(changes)
    )
    timed(
        "fold again (all duplicates, skipped)",
        "changes",
        len(changes),
        lambda: fold_everything_into(states, changes),
    )
    mapping = build_mapping(())
    routed = timed(
        "route facts to courses (mapping)", "effects", len(effects), lambda: route(effects, mapping)
    )
    timed(
        "desired: apply routed facts one by one",
        "facts",
        len(routed),
        lambda: build_desired(list(routed)),
    )
    courses = timed(
        "desired: apply routed facts batched per course",
        "facts",
        len(routed),
        lambda: build_desired_batched(routed),
    )
    policy, enrolments = PlanPolicy(), sum(len(d.entries) for d in courses.values())
    plans = timed(
        f"plan every course, empty ledger ({enrolments:,} enrols)",
        "plans",
        len(courses),
        lambda: [plan(d, empty_ledger(c), policy, NOW) for c, d in courses.items()],
    )
    ledgers = {p.course: apply_all(empty_ledger(p.course), p.commands, NOW) for p in plans}
    timed(
        "plan every course again, ledger in sync",
        "plans",
        len(courses),
        lambda: [plan(d, ledgers[c], policy, NOW) for c, d in courses.items()],
    )
    bench_ingest(changes)
    memory_per_100k(list(routed))


def fold_everything_into(states: dict[int, StudentState], changes: list[RowChange]) -> int:
    policy, skipped = FoldPolicy(), 0
    for change in changes:
        state = states[change.cod_ind]
        new_state, _ = fold(state, change, policy)
        skipped += new_state is state
    return skipped


if __name__ == "__main__":
    main()
