"""The study results the README and docs/studies.md quote are kept in docs/results/<study>/
(study.json, study.csv: per-seed values) and `rlvr report` re-renders the quoted numbers from
those files alone, so the prose cannot drift from the data."""
import re
import shutil
from pathlib import Path

import pytest

from rlvr.cli import main

ROOT = Path(__file__).resolve().parents[2]


def report(study: str, tmp_path, capsys) -> str:
    folder = tmp_path / study
    shutil.copytree(ROOT / "docs" / "results" / study, folder)  # no run folders: study.json alone
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    return capsys.readouterr().out


def test_the_readmes_flip_table_is_what_the_kept_flip_study_reports(tmp_path, capsys):
    out = report("flip_ci", tmp_path, capsys)
    rows = re.findall(r"^\| (.+?) \| (\d\.\d+) ± (\d\.\d+) \|\s*\**([-+]\d\.\d+ \[[-+]?\d\.\d+, [-+]?\d\.\d+\])?\**"
                      r"(?:, p = (\d\.\d+))?\s*\|$", (ROOT / "README.md").read_text(), re.M)
    arms = {"ground truth (control)": "ground_truth", "flip, fp 0.4": "flip_fp0.4", "flip, fn 0.2": "flip_fn0.2"}
    assert [r[0] for r in rows] == list(arms)
    for label, mean, sd, diff, p in rows:
        line = next(row for row in out.splitlines() if row.startswith(arms[label] + " "))
        assert line.split()[3] == f"{mean}±{sd}", label  # the final-accuracy column
        if diff:
            compared = next(row for row in out.splitlines() if row.startswith(f"{arms[label]} - ground_truth"))
            assert f"{diff.replace('+0', '0')} p={p}" in compared.replace("+0", "0"), (label, compared)


@pytest.mark.parametrize("study, quoted", [("graded_rare", "+0.034 [-0.029, 0.096] p=0.25"),
                                           ("graded_common", "+0.118 [0.017, 0.219] p=0.25")])
def test_the_graded_studies_in_the_docs_are_what_their_kept_files_report(study, quoted, tmp_path, capsys):
    out = report(study, tmp_path, capsys)
    assert quoted in out
    docs = (ROOT / "docs" / "studies.md").read_text()
    diff = quoted.split(" p=")[0].replace("[0.", "[+0.").replace(", 0.", ", +0.")
    assert diff in docs, diff


def test_the_persistent_flip_study_in_the_docs_is_what_its_kept_files_report(tmp_path, capsys):
    out = report("flip_persistent", tmp_path, capsys)
    compared = {row.split(" - ")[0]: row for row in out.splitlines() if " - ground_truth " in row}
    assert "-0.204 [-0.315, -0.094] p=0.25 holm=0.0308" in compared["flip_fp0.4_persistent"]
    assert "-0.129 [-0.360, 0.102] p=0.25 holm=0.138" in compared["flip_fp0.4"]
    persistent = next(row for row in out.splitlines() if row.startswith("flip_fp0.4_persistent "))
    assert persistent.split()[3] == "0.296±0.033" and "0.351±0.005" in persistent  # final; harmful share
    docs, readme = (ROOT / "docs" / "studies.md").read_text(), (ROOT / "README.md").read_text()
    assert "**-0.204 [-0.315, -0.094]**, Holm p = 0.031" in docs and "| 0.296 ± 0.033 |" in docs
    assert "-0.204 [-0.315, -0.094]" in readme and "35% of samples" in readme


def test_the_reward_model_study_figures_are_those_of_its_kept_files():
    import json

    data = json.loads((ROOT / "docs" / "results" / "rm_metrics" / "rm_study.json").read_text())
    diff = data["differences"]["HAcc - Acc"]["spearman"]
    quoted = f"{diff['diff']:+.2f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}]"
    gains, accs = ([r[key] for r in data["reward_models"]] for key in ("gain", "Acc"))
    span = f"gain {max(gains):.2f} to {min(gains):.2f}"
    for page in ("README.md", "docs/reward_models.md"):
        text = (ROOT / page).read_text()
        assert f"{data['gt_gain']:+.3f}" in text, page
        assert f"{min(accs):.2f}-{max(accs):.2f}" in text, page
        assert span in text, page
    assert quoted in (ROOT / "README.md").read_text()
    assert f"| HAcc - Acc (difference) | {quoted} |" in (ROOT / "docs" / "reward_models.md").read_text()
