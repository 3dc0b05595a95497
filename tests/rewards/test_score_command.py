"""`rlvr score`: malformed lines, re-scoring a run's samples/, design files, determinism."""
import json
import subprocess
import sys

import pytest

from rlvr.rewards.score_command import load_design, main


def write_jsonl(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scores_records_and_reports_malformed_lines(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"prompt_id": "a", "sample_index": 0, "response": "46;", "gold": "46"},
        '{"response": "46;", "gold": ',                    # line 2: broken JSON
        {"response": "45;"},                                 # line 3: no gold
        "",                                                  # blank lines are not records
        {"response": "12;", "gold": 12},                     # line 5: numeric gold, no prompt_id
        ["not", "an", "object"],                             # line 6
    ])
    out = tmp_path / "out.jsonl"
    code = main([str(src), "--verifier", "arithmetic", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1  # some lines were skipped
    assert f"{src}:2: malformed JSON" in captured.err
    assert f"{src}:3: missing key 'gold'" in captured.err
    assert f"{src}:6: expected a JSON object" in captured.err
    assert "2 records scored" in captured.out and "3 malformed line(s) skipped" in captured.out
    rows = read_jsonl(out)
    assert [(r["gt"], r["proxy"], r["reason"]) for r in rows] == [(1.0, 1.0, "ok"), (1.0, 1.0, "ok")]
    assert rows[1]["prompt_id"] == "in.jsonl:5" and rows[1]["sample_index"] == 0


def test_math_verifier_through_the_command(tmp_path, capsys):
    src = write_jsonl(tmp_path / "math.jsonl", [
        {"response": "so \\boxed{\\frac{1}{2}}", "gold": "0.5"},
        {"response": "the answer is \u22123", "gold": "-3"},
        {"response": "no idea", "gold": "7"},
    ])
    out = tmp_path / "out.jsonl"
    assert main([str(src), "--verifier", "math", "--out", str(out), "--workers", "1"]) == 0
    assert [r["reason"] for r in read_jsonl(out)] == ["ok", "ok", "no_answer"]


def samples_folder(tmp_path):
    folder = tmp_path / "run" / "samples"
    folder.mkdir(parents=True)
    for step in (2, 10):
        rows = [{"prompt_id": f"train-{p}", "sample_index": k, "response": f"{40 + k};", "gold": "41",
                 "num_tokens": 3, "gt": 9.0, "proxy": 9.0, "category": "old", "policy_version": step,
                 "step": step} for p in range(20) for k in range(4)]
        write_jsonl(folder / f"step_{step}.jsonl", rows)
    return folder


def test_rescoring_a_samples_folder_with_a_flip_design(tmp_path, capsys):
    folder = samples_folder(tmp_path)
    design = tmp_path / "flip.yaml"
    design.write_text("name: flip\nfp_rate: 0.5\nseed: 3\n")
    out = tmp_path / "rescored.jsonl"
    assert main([str(folder), "--verifier", "arithmetic", "--design", str(design), "--out", str(out)]) == 0
    rows = read_jsonl(out)
    assert len(rows) == 160 and [r["step"] for r in rows[:1] + rows[-1:]] == [2, 10]  # step_2 before step_10
    assert all(r["gt_before"] == 9.0 and r["proxy_before"] == 9.0 and r["category_before"] == "old"
               and r["category"] == "none" for r in rows)  # flip noise: no systematic error
    assert any(r["proxy"] != r["gt"] for r in rows) and all(r["systematic_proxy"] == pytest.approx(r["gt"]) for r in rows)
    assert [r["gt"] for r in rows[:4]] == [0.0, 1.0, 0.0, 0.0]
    wrong = [r["proxy"] for r in rows if r["gt"] == 0.0]
    assert 0.3 < sum(wrong) / len(wrong) < 0.7  # wrong answers flipped to 1 about half the time
    assert all(r["proxy"] == 1.0 for r in rows if r["gt"] == 1.0)


def test_determinism_across_processes(tmp_path):
    folder = samples_folder(tmp_path)
    outputs = []
    for n in range(2):
        out = tmp_path / f"out{n}.jsonl"
        subprocess.run([sys.executable, "-m", "rlvr.rewards.score_command", str(folder), "--verifier",
                        "arithmetic", "--design", "{name: flip, fp_rate: 0.3, fn_rate: 0.2, seed: 5}",
                        "--out", str(out)], check=True, capture_output=True)
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    assert len({r["proxy"] for r in map(json.loads, outputs[0].splitlines())}) == 2


def test_design_from_a_recipe_supplies_the_verifier(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("task: {name: arithmetic}\nreward:\n  verifier: arithmetic_graded\n"
                      "  design: {name: ground_truth}\n")
    assert load_design(str(recipe)) == ({"name": "ground_truth"}, f"{recipe}: reward.design",
                                        "arithmetic_graded")
    src = write_jsonl(tmp_path / "in.jsonl", [{"response": "56;", "gold": "46"}])
    out = tmp_path / "out.jsonl"
    assert main([str(src), "--design", str(recipe), "--out", str(out)]) == 0
    row = read_jsonl(out)[0]
    assert (row["gt"], row["gt_details"]["grade"]) == (0.5, "close")


def test_configuration_errors_exit_2(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"response": "1;", "gold": "1"}])
    out = tmp_path / "out.jsonl"
    assert main([str(src), "--verifier", "nope", "--out", str(out)]) == 2
    assert "reward.verifier = 'nope'" in capsys.readouterr().err
    assert main([str(src), "--verifier", "arithmetic", "--design", "{name: flip, fp_rate: 2}",
                 "--out", str(out)]) == 2
    assert "fp_rate = 2" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl"), "--verifier", "arithmetic", "--out", str(out)]) == 2
    assert main([str(src), "--out", str(out)]) == 2  # no verifier at all
    assert not out.exists()
    assert main(["--help"]) == 0


def test_constraints_records_without_constraints_are_skipped(tmp_path, capsys):
    src = write_jsonl(tmp_path / "c.jsonl", [
        {"response": "abc", "gold": "", "constraints": [{"name": "no_digits"}]},
        {"response": "abc", "gold": ""},
    ])
    out = tmp_path / "out.jsonl"
    assert main([str(src), "--verifier", "constraints", "--out", str(out)]) == 1
    assert f"{src}:2: verifier 'constraints' needs" in capsys.readouterr().err
    assert [r["gt"] for r in read_jsonl(out)] == [1.0]


def test_a_record_naming_an_unknown_constraint_is_skipped_with_file_and_line(tmp_path, capsys):
    """One bad record once aborted the whole file with no FILE:LINE; now only it is skipped."""
    src = write_jsonl(tmp_path / "c.jsonl", [
        {"response": "abc", "gold": "", "constraints": [{"name": "no_digits"}]},
        {"response": "abc", "gold": "", "constraints": [{"name": "no_digits"}, {"name": "no_such_rule"}]},
        {"response": "abc", "gold": "", "meta": {"constraints": [{"name": "ends_with"}]}},  # no suffix
        {"response": "ab1", "gold": "", "constraints": [{"name": "no_digits"}]},
    ])
    out = tmp_path / "out.jsonl"
    assert main([str(src), "--verifier", "constraints", "--out", str(out)]) == 1
    printed = capsys.readouterr()
    assert f"{src}:2: constraints[1].name = 'no_such_rule' is not a constraint" in printed.err
    assert f"{src}:3: constraints[0] (ends_with): needs parameters ['suffix']" in printed.err
    assert "2 malformed line(s) skipped" in printed.out
    assert [(r["prompt_id"], r["gt"]) for r in read_jsonl(out)] == [("c.jsonl:1", 1.0), ("c.jsonl:4", 0.0)]


@pytest.mark.parametrize("arg", ["{not yaml", "[1, 2]"])
def test_bad_inline_design(arg):
    from rlvr.rewards.errors import RewardConfigError

    with pytest.raises(RewardConfigError, match="neither a file nor a YAML mapping"):
        load_design(arg)
