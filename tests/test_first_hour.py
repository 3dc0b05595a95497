"""Small things a new user meets in the first hour: a broken recipe file's line, `rlvr report`
of a missing folder, Ray's token-auth notice, `rlvr theory`'s "never reached", the warm-up
cache a study shares with runs/_models, and the build message naming the final folder."""
import inspect
import logging
from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.config import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")


def test_a_broken_recipe_file_names_its_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 0\nsteps: 3\ntask:\n  name: arithmetic\n   num_digits: 2\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(str(bad))
    message = str(err.value)
    assert message.startswith(f"recipe file {bad} line 5, column 14: not valid YAML (mapping values are not "
                              "allowed in this context): check the indentation there")
    assert "key='value'" not in message  # the advice for overrides does not fit a file
    with pytest.raises(RecipeError, match="quote override values"):
        load_recipe(QUICKSTART, ["reward.design={name: flip"])


def test_report_of_a_missing_folder_says_so(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert f"{tmp_path / 'nope'}: the folder does not exist" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no study.json" in capsys.readouterr().err


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_rays_token_auth_notice_is_dropped_where_rlvr_starts_ray():
    import ray._private.authentication.authentication_token_setup as setup

    from rlvr.controller.cluster import _AUTH_LOGGER, TOKEN_AUTH_NOTICE, quiet_token_auth_notice

    # the logger and message rlvr filters are the ones Ray 2.60 uses
    assert setup.logger.name == _AUTH_LOGGER
    assert TOKEN_AUTH_NOTICE in inspect.getsource(setup._warn_token_auth_enabled)
    collect = Collect()  # Ray's loggers do not propagate to the root logger (caplog)
    setup.logger.addHandler(collect)
    try:
        with quiet_token_auth_notice():
            setup._warn_token_auth_enabled()
            setup._warn_token_auth_disabled()  # this one still shows
        setup._warn_token_auth_enabled()  # outside the block: Ray's own behaviour
    finally:
        setup.logger.removeHandler(collect)
    messages = collect.messages
    assert len(messages) == 2 and messages[0].startswith("Token authentication is disabled")
    assert messages[1].startswith(TOKEN_AUTH_NOTICE)


def test_theory_summary_says_never_reached():
    from rlvr.theory.command import reached_text

    assert reached_text(None) == "never reached" and reached_text(168) == "reached at step 168"


def _complete_model(folder: Path) -> None:
    import json

    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_text("{}")
    (folder / "rlvr_warmup.json").write_text(json.dumps({"source": "tiny", "steps": 7}))


def test_a_run_writing_elsewhere_uses_the_model_runs_models_already_holds(tmp_path, monkeypatch):
    from rlvr.models.prepare import cache_dirs, policy_cache_key, prepare_policy

    monkeypatch.chdir(tmp_path)
    study = load_recipe(QUICKSTART, ["output_dir=runs/studies/flip"])
    assert cache_dirs(study) == [Path("runs/studies/flip/_models"), Path("runs/_models")]
    assert cache_dirs(load_recipe(QUICKSTART)) == [Path("runs/_models")]
    _complete_model(tmp_path / "runs" / "_models" / policy_cache_key(study))
    logged = []
    folder, info = prepare_policy(study, [], [], verify=None, log=logged.append)
    assert folder == str(Path("runs/_models") / policy_cache_key(study)) and info["steps"] == 7
    assert logged == [f"initial policy: cached tiny model {folder}"]
    assert not (tmp_path / "runs" / "studies").exists()  # nothing built, nothing copied


def test_the_build_messages_name_the_final_folder(tmp_path, monkeypatch):
    import rlvr.models.prepare as prepare

    def fake_build(cfg, tmp, train, held_out, verify, log, final=None):
        log(f"building tiny model {final or tmp}")
        _complete_model(tmp)
        return {"source": "tiny"}

    monkeypatch.setattr(prepare, "_build_policy", fake_build)
    monkeypatch.chdir(tmp_path)
    cfg = load_recipe(QUICKSTART, [f"output_dir={tmp_path / 'out'}"])
    logged = []
    folder, _ = prepare.prepare_policy(cfg, [], [], verify=None, log=logged.append)
    assert logged == [f"building tiny model {folder}", f"initial policy: built tiny model {folder}"]
    assert ".building" not in "".join(logged)
