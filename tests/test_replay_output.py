"""replay/output.py through ``perception replay`` / ``perception demo``: a folder is ours only with the
marker; only our own outputs are ever replaced; anything else in --out survives every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.bags import write_clouds

from perception_pkg.cli.main import main
from perception_pkg.replay import replay_bag
from perception_pkg.replay.output import MARKER, OutputFolderError, check_output


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    write_clouds(tmp_path / "in", 5)
    return tmp_path / "in"


def _replay(capsys: pytest.CaptureFixture[str], bag: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(["replay", str(bag), "--out", str(out), "--pipelines", "", "--quiet", *extra])
    return code, capsys.readouterr().err


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_force_replaces_only_our_outputs(
    bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _replay(capsys, bag, out)[0] == 0
    assert json.loads((out / MARKER).read_text())["outputs"] == ["bag", "summary.json"]
    (out / "notes.txt").write_text("mine")
    (out / "plots").mkdir()
    (out / "plots" / "mine.png").write_bytes(b"png")
    code, err = _replay(capsys, bag, out)  # without --force: refused, nothing changed
    assert (
        code == 2 and "holds the outputs of an earlier run (bag, summary.json); --force replaces them" in err
    )
    assert _replay(capsys, bag, out, "--force")[0] == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "plots" / "mine.png").read_bytes() == b"png"
    assert {"bag", "summary.json", MARKER, "notes.txt", "plots"} == {p.name for p in out.iterdir()}


def test_no_bag_with_force_removes_our_earlier_bag(
    bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert _replay(capsys, bag, out)[0] == 0 and (out / "bag").is_dir()
    assert _replay(capsys, bag, out, "--no-bag", "--force")[0] == 0
    assert not (out / "bag").exists()  # no stale bag beside a summary that says there is none
    assert json.loads((out / "summary.json").read_text())["output_bag"] is None
    assert json.loads((out / MARKER).read_text())["outputs"] == ["summary.json"]


@pytest.mark.parametrize("force", [False, True])
def test_a_non_empty_folder_that_is_not_ours_is_refused_force_or_not(
    bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], force: bool
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("someone else's")  # even a name we would write
    (out / "bag").mkdir()
    code, err = _replay(capsys, bag, out, *(["--force"] if force else []))
    assert code == 2 and "is not empty (bag, summary.json) and was not written by perception" in err
    assert _tree(out) == {"summary.json", "bag"} and (out / "summary.json").read_text() == "someone else's"


def test_demo_refuses_a_folder_with_unrelated_files_and_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(["demo", "--out", str(out), "--pipelines", "", "--no-bag", "--quiet"])
    assert code == 2 and "not written by perception" in capsys.readouterr().err
    assert _tree(out) == {"notes.txt"}


def test_demo_replaces_its_own_outputs_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--pipelines", "", "--no-bag", "--quiet"]) == 0
    first = json.loads((out / "summary.json").read_text())
    (out / "notes.txt").write_text("mine")
    assert (
        main(["demo", "--out", str(out), "--pipelines", "", "--no-bag", "--quiet"]) == 0
    )  # no --force needed
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "summary.json").read_text())["messages"] == first["messages"] > 0


def test_out_pointing_at_a_file_says_so(
    bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    code, err = _replay(capsys, bag, target)
    assert code == 2
    assert (
        err.strip().splitlines()[-1]
        == f"perception replay: --out {target} is a file, not a folder; choose a folder (it is created)"
    )
    assert target.read_text() == "x"
    code, err = _replay(capsys, bag, target / "sub")
    assert code == 2 and f"{target} is a file, not a folder" in err


def test_an_empty_folder_is_taken_and_the_api_refuses_like_the_cli(bag: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    res = replay_bag(bag, out, [], progress=False)
    assert res.output_bag == out / "bag" and (out / MARKER).is_file()
    with pytest.raises(OutputFolderError, match="--force replaces them"):
        replay_bag(bag, out, [], progress=False)
    assert replay_bag(bag, out, [], progress=False, force=True).summary["messages"] == 5


def test_a_marker_never_names_anything_outside_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious").write_text("keep")
    (out / "x").write_text("ours")
    (out / MARKER).write_text(json.dumps({"outputs": ["../precious", "/etc", "x", "."]}))
    folder = check_output(out, force=True)
    assert folder.earlier == ["x"]
    folder.claim(["summary.json"])
    assert (tmp_path / "precious").read_text() == "keep" and not (out / "x").exists()
