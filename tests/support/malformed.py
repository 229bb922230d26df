"""Malformed CDC records of every kind a broken connector, a bad hand edit or a hostile
producer can put on the APOGÉE topics, each with the dead-letter reason it must get.

:func:`malformed` yields :class:`Bad` records, a fixed mix of kinds, deterministic for a seed:

* ``wrong type`` — a key column as text, a boolean, a list, an object, a float; a row image
  or a ``source`` that is not an object; JSON that is not an object at all;
* ``missing field`` — no ``source``, no key column, a create without ``after``, a delete
  without ``before``;
* ``unknown op`` — truncate and message ops, made-up ops, no op;
* ``huge value`` — numbers beyond 38 digits (or an exponent of a hundred million), text
  beyond 4,000 characters, and hundreds of kilobytes of garbage;
* ``invalid utf-8`` — undecodable bytes, alone or inside JSON strings;
* ``not json`` — truncated JSON, text, an empty value;
* ``unknown table`` — a ``source.table`` the reconciler does not read;
* ``tombstone`` — a null value: what Debezium writes after each delete for compaction; not
  malformed, so counted and ignored (``reason`` None), never dead-lettered.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from schemas.deadletter import DeadLetterReason

TOPICS = ("apogee.apogee.individu", "apogee.apogee.ins_adm_etp", "apogee.apogee.ind_contrat_elp")

_ROWS: dict[str, dict[str, Any]] = {
    "apogee.apogee.individu": {"cod_ind": 1, "cod_etu": 10000001},
    "apogee.apogee.ins_adm_etp": {
        "cod_anu": "2026",
        "cod_ind": 1,
        "cod_etp": "STG",
        "cod_vrs_vet": 1,
        "num_occ_iae": 1,
        "eta_iae": "E",
    },
    "apogee.apogee.ind_contrat_elp": {
        "cod_anu": "2026",
        "cod_ind": 1,
        "cod_etp": "STG",
        "cod_vrs_vet": 1,
        "cod_elp": "ELP1",
        "tem_prc_ice": "N",
    },
}

INVALID = DeadLetterReason.INVALID_ENVELOPE
NOT_JSON = DeadLetterReason.MALFORMED_JSON
OP = DeadLetterReason.UNSUPPORTED_OPERATION
TABLE = DeadLetterReason.UNKNOWN_TABLE

# (kind, share of the records); huge values are few (they are large), tombstones a handful.
MIX = [
    ("wrong type", 25),
    ("missing field", 20),
    ("unknown op", 15),
    ("invalid utf-8", 12),
    ("not json", 10),
    ("unknown table", 12),
    ("huge value", 1),
    ("tombstone", 5),
]


@dataclass(frozen=True)
class Bad:
    kind: str
    topic: str
    key: bytes | None
    value: bytes | None
    reason: DeadLetterReason | None  # None: not dead-lettered (a tombstone)


def malformed(count: int, cod_ind: int, seed: int = 12) -> Iterator[Bad]:
    """``count`` bad records, keyed by ``cod_ind`` (a student outside any test's slice)."""
    rng = random.Random(seed)
    kinds = [kind for kind, share in MIX for _ in range(share)]
    for n in range(count):
        kind = kinds[n % len(kinds)]
        topic = TOPICS[rng.randrange(3)]
        key = _key(rng, cod_ind)
        value, reason = _MAKERS[kind](rng, topic)
        yield Bad(kind, topic, key, value, reason)


def _key(rng: random.Random, cod_ind: int) -> bytes | None:
    pick = rng.random()
    if pick < 0.05:
        return None
    if pick < 0.1:
        return b"\xc3\x28 not a key"
    return json.dumps({"cod_ind": cod_ind + rng.randrange(1000)}).encode()


def _envelope(topic: str, **changes: Any) -> dict[str, Any]:
    row = dict(_ROWS[topic])
    table = topic.rsplit(".", 1)[-1]
    envelope: dict[str, Any] = {
        "op": "c",
        "before": None,
        "after": row,
        "source": {"connector": "postgresql", "lsn": 1, "txId": 1, "table": table},
        "ts_ms": 1,
    }
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = envelope
        for part in parents:
            target = target[part]
        if value is _DROP:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return envelope


_DROP = object()
Made = tuple[bytes | None, DeadLetterReason | None]


def _dump(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode()


def _wrong_type(rng: random.Random, topic: str) -> Made:
    choices: list[Made] = [
        (_dump(_envelope(topic, after__cod_ind="abc")), INVALID),
        (_dump(_envelope(topic, after__cod_ind=True)), INVALID),
        (_dump(_envelope(topic, after__cod_ind=[1])), INVALID),
        (_dump(_envelope(topic, after__cod_ind={"value": 1})), INVALID),
        (_dump(_envelope(topic, after__cod_ind=1.5)), INVALID),
        (_dump(_envelope(topic, after="a row")), INVALID),
        (_dump(_envelope(topic, source=[1, 2])), INVALID),
        (_dump(_envelope(topic, source__lsn="not a position")), INVALID),
        (_dump(_envelope(topic, ts_ms="yesterday")), INVALID),
        (b"[1, 2, 3]", INVALID),
        (b"42", INVALID),
        (b'"a string"', INVALID),
        (b"null", INVALID),
    ]
    return rng.choice(choices)


def _missing_field(rng: random.Random, topic: str) -> Made:
    choices: list[Made] = [
        (_dump(_envelope(topic, source=_DROP)), INVALID),
        (_dump(_envelope(topic, after__cod_ind=_DROP)), INVALID),
        (_dump(_envelope(topic, after=_DROP)), INVALID),
        (_dump(_envelope(topic, op="d", after=None)), INVALID),
        (_dump(_envelope(topic, source__lsn=_DROP)), INVALID),
        (b"{}", OP),  # nothing at all: the missing op is named first
    ]
    return rng.choice(choices)


def _unknown_op(rng: random.Random, topic: str) -> Made:
    op = rng.choice(["t", "m", "x", "", "truncate", "C", "delete", None])
    envelope = _envelope(topic, op=op) if op is not None else _envelope(topic, op=_DROP)
    return _dump(envelope), OP


def _huge(rng: random.Random, topic: str) -> Made:
    size = rng.randrange(100_000, 300_000)
    choices: list[Made] = [
        (_dump(_envelope(topic, after__cod_ind="1e99999999")), INVALID),
        (_dump(_envelope(topic, after__cod_ind="9" * 39)), INVALID),
        (_dump(_envelope(topic, after__cod_ind=10**39)), INVALID),
        (_dump(_envelope(topic, after__cod_ind="7" * size)), INVALID),
        (_dump(_envelope(topic, source__lsn="@")).replace(b'"@"', b"9" * 5000), NOT_JSON),
        (bytes(rng.randrange(256) for _ in range(size)), NOT_JSON),
    ]
    # a text column read from the row, 100 KB or more (an unread column may be any size)
    column = {"individu": "lib_nom_pat_ind", "ins_adm_etp": "cod_etp", "ind_contrat_elp": "cod_elp"}
    text = {f"after__{column[topic.rsplit('.', 1)[-1]]}": "C" * size}
    choices.append((_dump(_envelope(topic, **text)), INVALID))
    value, reason = rng.choice(choices)
    if value and value[:1] != b"{" and reason is NOT_JSON:
        value = b"{" + value  # random bytes that happen to be JSON would be another reason
    return value, reason


def _invalid_utf8(rng: random.Random, topic: str) -> Made:
    inside = _dump(_envelope(topic, after__cod_etu="@@")).replace(b"@@", b"\xff\xfe\x80")
    choices: list[Made] = [
        (b"\xff\xfe invalid utf-8", NOT_JSON),
        (b"\xc3\x28\xa0\xa1", NOT_JSON),
        (inside, NOT_JSON),
    ]
    return rng.choice(choices)


def _not_json(rng: random.Random, topic: str) -> Made:
    whole = _dump(_envelope(topic))
    choices: list[Made] = [
        (whole[: rng.randrange(1, len(whole) - 1)], NOT_JSON),
        (b"{not json", NOT_JSON),
        (b"INSERT INTO individu VALUES (1)", NOT_JSON),
        (b"", NOT_JSON),
        (b"{'op': 'c'}", NOT_JSON),
    ]
    return rng.choice(choices)


def _unknown_table(rng: random.Random, topic: str) -> Made:
    table = rng.choice(["ind_groupe", "individu_hist", "elp", "ins_pedago", "resultat_elp"])
    if rng.random() < 0.5:  # the row of our table, the source naming another
        return _dump(_envelope(topic, source__table=table)), TABLE
    envelope = _envelope(topic, source__table=table, after={"cod_grp": "G1", "lib": "x"})
    return _dump(envelope), TABLE


def _tombstone(rng: random.Random, topic: str) -> Made:
    return None, None


_MAKERS = {
    "wrong type": _wrong_type,
    "missing field": _missing_field,
    "unknown op": _unknown_op,
    "huge value": _huge,
    "invalid utf-8": _invalid_utf8,
    "not json": _not_json,
    "unknown table": _unknown_table,
    "tombstone": _tombstone,
}
