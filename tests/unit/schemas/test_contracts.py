"""The data contracts accept what Debezium sends and reject the rest with clear errors."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas import (
    CommandKind,
    DeadLetterReason,
    DeadLetterRecord,
    EnrolmentTuple,
    FactKind,
    IndContratElpChange,
    InsAdmEtpChange,
    MembershipFact,
    MoodleCommand,
    OracleSource,
    PostgresSource,
    SourceRef,
    parse_change,
)

PG_SOURCE = {
    "connector": "postgresql",
    "lsn": 24023128,
    "txId": 555,
    "ts_ms": 1,
    "snapshot": "false",
}


def test_postgresql_lower_case_days_since_epoch_and_ints() -> None:
    value = {
        "op": "c",
        "before": None,
        "source": PG_SOURCE,
        "ts_ms": 2,
        "after": {
            "cod_anu": "2026",
            "cod_ind": 7,
            "cod_etp": "L1INF",
            "cod_vrs_vet": 1,
            "num_occ_iae": 1,
            "eta_iae": "E",
            "dat_cre_iae": 20_700,
            "extra_column": "ignored",
        },
    }
    env = InsAdmEtpChange.model_validate_json(json.dumps(value))
    assert env.after is not None and env.after.dat_cre_iae == date(2026, 9, 4)
    assert isinstance(env.source, PostgresSource) and env.source.tx_id == 555


def test_oracle_upper_case_decimal_strings_and_millisecond_dates() -> None:
    value = {
        "op": "u",
        "source": {
            "connector": "oracle",
            "scn": "9000",
            "commit_scn": "9001",
            "txId": "0a001b00c4010000",
        },
        "after": {
            "COD_ANU": "2026",
            "COD_IND": "7",
            "COD_ETP": "L1INF",
            "COD_VRS_VET": "1",
            "COD_ELP": "INF101",
            "TEM_PRC_ICE": "N",
            "DAT_MOD_ICE": 1_788_480_000_000,
        },
    }
    env = IndContratElpChange.model_validate_json(json.dumps(value))
    assert env.after is not None and (env.after.cod_ind, env.after.cod_vrs_vet) == (7, 1)
    assert env.after.dat_mod_ice == date(2026, 9, 4)
    assert isinstance(env.source, OracleSource) and env.source.commit_scn == 9001


def test_student_number_is_kept_as_canonical_text() -> None:
    env = parse_change(
        "INDIVIDU",
        json.dumps(
            {"op": "r", "after": {"COD_IND": "7", "COD_ETU": "21000001"}, "source": PG_SOURCE}
        ),
    )
    assert env.after is not None and env.after.cod_etu == "21000001" and env.is_snapshot


def test_errors_name_the_field() -> None:
    bad = {"op": "c", "source": PG_SOURCE, "after": {"cod_ind": "seven"}}
    with pytest.raises(ValidationError) as caught:
        parse_change("individu", json.dumps(bad))
    assert "after.cod_ind" in str(caught.value) and "expected an integer" in str(caught.value)


def test_a_delete_needs_its_before_image() -> None:
    with pytest.raises(ValidationError, match="needs a 'before' row image"):
        parse_change("individu", json.dumps({"op": "d", "source": PG_SOURCE}))


def test_unknown_table_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        parse_change("GROUPE", b"{}")


def test_a_fact_is_identified_without_its_provenance() -> None:
    ref = SourceRef("IND_CONTRAT_ELP", "2026|7|L1INF|1|INF101", 5)
    a = MembershipFact("21000001", FactKind.ELEMENT, "2026", "L1INF", 1, "INF101")
    b = MembershipFact(
        "21000001", FactKind.ELEMENT, "2026", "L1INF", 1, "INF101", provenance=(ref,)
    )
    assert a == b and hash(a) == hash(b)


def test_a_command_round_trips_through_json() -> None:
    ref = SourceRef("IND_CONTRAT_ELP", "2026|7|L1INF|1|INF101", 5, "555", topic="t", offset=3)
    fact = MembershipFact(
        "21000001", FactKind.ELEMENT, "2026", "L1INF", 1, "INF101", provenance=(ref,)
    )
    command = MoodleCommand(
        CommandKind.ENROL, "2026-INF101", "21000001", EnrolmentTuple("student"), facts=(fact,)
    )
    adapter = TypeAdapter(MoodleCommand)
    again = adapter.validate_json(adapter.dump_json(command))
    assert again == command and again.facts[0].provenance == (ref,)


def test_a_command_always_carries_a_consistent_tuple() -> None:
    with pytest.raises(ValueError, match="suspend"):
        MoodleCommand(CommandKind.SUSPEND, "C", "U", EnrolmentTuple("student", suspend=False))
    with pytest.raises(ValueError, match="previous_role"):
        MoodleCommand(CommandKind.CHANGE_ROLE, "C", "U", EnrolmentTuple("teacher"))


def test_dead_letter_reason_is_a_fixed_list() -> None:
    record = DeadLetterRecord(
        reason=DeadLetterReason.MALFORMED_JSON,
        detail="x",
        topic="t",
        partition=0,
        offset=1,
        key=None,
        value="{",
        at=datetime(2026, 1, 1),
    )
    assert json.loads(record.model_dump_json())["reason"] == "malformed_json"
    with pytest.raises(ValidationError):
        DeadLetterRecord.model_validate_json(
            record.model_dump_json().replace("malformed_json", "oops")
        )
