"""``weir run --journal`` files: records round-trip, a last line cut short by a kill is ignored,
any other bad line is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.journal import JournalError, JournalWriter, read_journal
from engine.state import NodeResult, NodeStatus

RECORDS = [
    NodeResult("a", 1, 1, NodeStatus.COMPLETED, {"x": [1, 2]}, "SUCCESS", started_at=1.5),
    NodeResult("m", 1, 0, NodeStatus.RUNNING, [1, 2], finished_at=2.0),
    NodeResult("m", 1, 2, NodeStatus.FAILED, None, "FAIL", "boom", True, item=1),
    NodeResult("b", 2, 1, NodeStatus.COMPLETED, None, "GO", route="c", reused_from="e0"),
]


def write(path: Path) -> None:
    writer = JournalWriter(path)
    writer.header("e1", "flow", "1.2.3", {"n": 1})
    for r in RECORDS:
        writer.record(r)
    writer.close()


def test_records_round_trip(tmp_path: Path) -> None:
    write(tmp_path / "j")
    journal = read_journal(tmp_path / "j")
    assert (journal.execution, journal.workflow, journal.version) == ("e1", "flow", "1.2.3")
    assert journal.inputs == {"n": 1}
    assert journal.records == RECORDS


def test_a_last_line_cut_short_is_ignored_any_other_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "j"
    write(path)
    path.write_text(path.read_text() + '{"node": "c", "vis')
    assert read_journal(path).records == RECORDS
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], '{"visit": 1}', *lines[2:]]))
    with pytest.raises(JournalError, match=r":3: not a journal record: missing field 'node'"):
        read_journal(path)
    path.write_text("[]\n")
    with pytest.raises(JournalError, match=":1: not a journal header"):
        read_journal(path)
    with pytest.raises(JournalError, match="No such file"):
        read_journal(tmp_path / "missing")
