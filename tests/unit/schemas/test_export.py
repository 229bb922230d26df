"""The exported JSON Schemas are current, and the CLI command exports and checks them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from schemas.export import CONTRACTS, command, stale_files


def test_exported_json_schemas_are_current() -> None:
    stale = stale_files()
    assert stale == [], f"stale JSON Schemas {stale}: run `reconciler schemas export`"


def test_export_then_check_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(command, ["check", "--dir", str(tmp_path)]).exit_code == 1
    assert runner.invoke(command, ["export", "--dir", str(tmp_path)]).exit_code == 0
    assert sorted(p.stem for p in tmp_path.iterdir()) == sorted(CONTRACTS)
    result = runner.invoke(command, ["check", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_a_changed_file_is_reported_stale(tmp_path: Path) -> None:
    CliRunner().invoke(command, ["export", "--dir", str(tmp_path)])
    (tmp_path / "membership_fact.json").write_text("{}\n", encoding="utf-8")
    assert stale_files(tmp_path) == ["membership_fact"]
