"""bot.config: autoresearch.yaml + AUTORESEARCH_* overrides → a frozen Config."""

import dataclasses

import pytest

from bot.config import CONFIG_FILE, Config, load_config, parse_config, with_overrides
from bot.errors import ConfigError


def test_defaults():
    config = parse_config({})
    assert config == Config()
    assert config.tag == "default"
    assert config.editable == ("train.py",)
    assert config.harness == ("prepare.py",)
    assert config.metric == "val_bpb" and config.direction == "minimize"
    assert config.budget_seconds == 300.0 and config.timeout_seconds is None
    assert config.proposer == "offline" and config.decision_rule == "noise-aware" and config.replicates == 3
    assert parse_config(None) == Config()


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().tag = "other"


@pytest.mark.parametrize(
    "data, field, expected",
    [
        ({"tag": "gpt-small_1.0"}, "tag", "gpt-small_1.0"),
        ({"tag": 123}, "tag", "123"),
        ({"editable": ["train.py", "model.py"]}, "editable", ("train.py", "model.py")),
        ({"editable": "train.py, model.py ,, "}, "editable", ("train.py", "model.py")),
        ({"editable": "src/*.py"}, "editable", ("src/*.py",)),
        ({"budget_seconds": 60}, "budget_seconds", 60.0),
        ({"budget_seconds": "90.5"}, "budget_seconds", 90.5),
        ({"timeout_seconds": None}, "timeout_seconds", None),
        ({"max_usd": 2.5}, "max_usd", 2.5),
        ({"parallel": "4"}, "parallel", 4),
        ({"seed": 0}, "seed", 0),
        ({"runner": "local"}, "runner", "local"),
        ({"direction": "maximize"}, "direction", "maximize"),
        ({"proposer": "anthropic"}, "proposer", "anthropic"),
        ({"gpu": "A100-80GB"}, "gpu", "A100-80GB"),
    ],
    ids=["tag", "tag-number-as-text", "list", "comma-string", "glob", "int-to-float", "text-to-float",
         "optional-null", "max-usd", "text-to-int", "seed-zero", "runner", "direction", "proposer", "gpu"],
)
def test_parse_config_values(data, field, expected):
    value = getattr(parse_config(data), field)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "data, message_parts",
    [
        ({"budget_second": 60}, ["unknown setting `budget_second`", "did you mean `budget_seconds`"]),
        ({"editables": ["a.py"]}, ["unknown setting `editables`", "did you mean `editable`"]),
        ({"zzzzzz": 1}, ["unknown setting `zzzzzz`", "valid settings:", "budget_seconds"]),
        ({"budget_seconds": "soon"}, ["`budget_seconds`", "'soon'", "float"]),
        ({"budget_seconds": True}, ["`budget_seconds`", "True"]),
        ({"parallel": "two"}, ["`parallel`", "int"]),
        ({"budget_seconds": 0}, ["`budget_seconds` must be positive"]),
        ({"budget_seconds": -5}, ["`budget_seconds` must be positive"]),
        ({"parallel": 0}, ["`parallel` must be positive"]),
        ({"timeout_seconds": -1}, ["`timeout_seconds` must be positive"]),
        ({"max_usd": -0.5}, ["`max_usd` must be positive"]),
        ({"budget_seconds": None}, ["`budget_seconds` needs a value"]),
        ({"editable": []}, ["`editable`"]),
        ({"editable": 5}, ["`editable`"]),
        ({"command": ["python", "train.py"]}, ["`command`"]),
        ({"runner": "kubernetes"}, ["`runner` is 'kubernetes'", "local", "modal"]),
        ({"direction": "down"}, ["`direction`", "minimize", "maximize"]),
        ({"proposer": "gpt"}, ["`proposer`", "offline", "anthropic"]),
        ({"decision_rule": "bayes"}, ["`decision_rule`", "greedy"]),
        ({"tag": "a/b"}, ["tag 'a/b'"]),
        ({"tag": "with space"}, ["tag 'with space'"]),
        ({"tag": ".hidden"}, ["tag '.hidden'"]),
        ({"tag": ""}, ["tag ''"]),
    ],
    ids=["typo-suggests", "typo-suggests-editable", "no-close-match-lists-all", "bad-float", "bool-not-number",
         "bad-int", "zero-budget", "negative-budget", "zero-parallel", "negative-timeout", "negative-usd",
         "null-required", "empty-editable", "editable-not-list", "command-not-text", "bad-runner",
         "bad-direction", "bad-proposer", "bad-rule", "tag-slash", "tag-space", "tag-dot", "tag-empty"],
)
def test_parse_config_errors(data, message_parts):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    message = str(caught.value)
    for part in message_parts:
        assert part in message
    assert message.startswith(CONFIG_FILE)  # says which file is wrong


@pytest.mark.parametrize(
    "data",
    [["budget_seconds", 60], "budget_seconds: 60", 42],
    ids=["list", "string", "number"],
)
def test_parse_config_needs_a_mapping(data):
    with pytest.raises(ConfigError, match="expected `key: value` settings"):
        parse_config(data)


@pytest.mark.parametrize("data, env", [
    ({"budget_seconds": float("nan")}, {}),
    ({}, {"AUTORESEARCH_BUDGET_SECONDS": "nan"}),
    ({"timeout_seconds": "inf"}, {}),
], ids=["yaml", "env", "infinite-timeout"])
def test_nan_budget_is_refused(data, env):
    with pytest.raises(ConfigError, match="finite"):
        parse_config(data, env)


def test_fractional_int_setting_is_refused():
    with pytest.raises(ConfigError):
        parse_config({"max_consecutive_crashes": 2.5})


@pytest.mark.parametrize(
    "data, env, field, expected",
    [
        ({}, {"AUTORESEARCH_BUDGET_SECONDS": "60"}, "budget_seconds", 60.0),
        ({"budget_seconds": 600}, {"AUTORESEARCH_BUDGET_SECONDS": "30"}, "budget_seconds", 30.0),
        ({}, {"AUTORESEARCH_RUNNER": "local"}, "runner", "local"),
        ({}, {"AUTORESEARCH_EDITABLE": "train.py,model.py"}, "editable", ("train.py", "model.py")),
        ({}, {"AUTORESEARCH_TAG": "night1"}, "tag", "night1"),
        ({}, {"AUTORESEARCH_MAX_USD": "3"}, "max_usd", 3.0),
        ({}, {"AUTORESEARCH_SEED": "7"}, "seed", 7),
        # variables that name no setting belong to the harness or to nobody: ignored
        ({}, {"AUTORESEARCH_RESULT_PATH": "/tmp/result.json"}, "budget_seconds", 300.0),
        ({}, {"AUTORESEARCH_BUDGET_SECOND": "1"}, "budget_seconds", 300.0),
        # only the AUTORESEARCH_ prefix counts
        ({}, {"BUDGET_SECONDS": "1", "RUNNER": "local"}, "runner", "modal"),
    ],
    ids=["env-budget", "env-beats-file", "env-runner", "env-list", "env-tag", "env-usd", "env-seed",
         "result-path-ignored", "unknown-env-ignored", "unprefixed-ignored"],
)
def test_environment_overrides(data, env, field, expected):
    assert getattr(parse_config(data, env), field) == expected


def test_result_path_is_not_a_setting():
    config = parse_config({}, {"AUTORESEARCH_RESULT_PATH": "/tmp/result.json"})
    assert config == Config()
    assert not hasattr(config, "result_path")


@pytest.mark.parametrize(
    "env, message_parts",
    [
        ({"AUTORESEARCH_BUDGET_SECONDS": "abc"}, ["environment variable AUTORESEARCH_BUDGET_SECONDS", "'abc'"]),
        ({"AUTORESEARCH_PARALLEL": "0"}, ["environment variable AUTORESEARCH_PARALLEL", "positive"]),
        ({"AUTORESEARCH_RUNNER": "cloud"}, ["`runner` is 'cloud'"]),
        ({"AUTORESEARCH_TAG": "a b"}, ["tag 'a b'"]),
    ],
    ids=["bad-number", "zero-parallel", "bad-choice", "bad-tag"],
)
def test_environment_override_errors(env, message_parts):
    with pytest.raises(ConfigError) as caught:
        parse_config({}, env)
    for part in message_parts:
        assert part in str(caught.value)


@pytest.mark.parametrize(
    "budget, timeout, expected",
    [(300, None, 600.0), (30, None, 90.0), (5, None, 65.0), (1000, None, 2000.0), (300, 100, 100.0),
     (300, 0, 0.0)],
    ids=["default", "short-budget-min-60", "tiny-budget", "long-budget-doubles", "explicit", "explicit-zero"],
)
def test_effective_timeout(budget, timeout, expected):
    config = Config(budget_seconds=budget, timeout_seconds=timeout)
    assert config.effective_timeout == expected
    assert isinstance(config.effective_timeout, float)


@pytest.mark.parametrize(
    "tag, expected",
    [
        ("default", {"tracking": "autoresearch/default", "experiment": "autoresearch/default-exp/",
                     "ledger": "autoresearch/default-ledger"}),
        ("gpt.v2", {"tracking": "autoresearch/gpt.v2", "experiment": "autoresearch/gpt.v2-exp/",
                    "ledger": "autoresearch/gpt.v2-ledger"}),
    ],
    ids=["default", "dotted"],
)
def test_branches(tag, expected):
    branches = Config(tag=tag).branches
    assert branches == expected
    # git cannot hold both `a/b` and `a/b/c`: no branch may be a directory of another
    experiment = branches["experiment"] + "0001"
    for name in (branches["tracking"], branches["ledger"], experiment):
        others = {branches["tracking"], branches["ledger"], experiment} - {name}
        assert not any(other.startswith(name + "/") for other in others)


def test_with_overrides_ignores_none_and_coerces():
    base = parse_config({"budget_seconds": 120, "runner": "local"})
    same = with_overrides(base, budget_seconds=None, tag=None, runner=None)
    assert same == base
    changed = with_overrides(base, budget_seconds="45", tag="cli-tag")
    assert changed.budget_seconds == 45.0 and changed.tag == "cli-tag"
    assert changed.runner == "local"  # untouched
    assert base.budget_seconds == 120.0  # the original is not modified


@pytest.mark.parametrize(
    "overrides, message",
    [({"budget_seconds": 0}, "--budget-seconds"), ({"budget_seconds": "x"}, "--budget-seconds")],
    ids=["zero-budget", "bad-budget"],
)
def test_with_overrides_checks_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(Config(), **overrides)


@pytest.mark.parametrize("overrides", [{"tag": "bad tag"}, {"runner": "nope"}], ids=["tag", "runner"])
def test_with_overrides_validates_like_the_file(overrides):
    with pytest.raises(ConfigError):
        with_overrides(Config(), **overrides)


def test_load_config_reads_the_yaml(tmp_path):
    (tmp_path / CONFIG_FILE).write_text(
        "tag: nightly\neditable:\n  - train.py\n  - model.py\nbudget_seconds: 120\nrunner: local\n"
    )
    config = load_config(tmp_path, env={"AUTORESEARCH_BUDGET_SECONDS": "30"})
    assert config.tag == "nightly"
    assert config.editable == ("train.py", "model.py")
    assert config.runner == "local"
    assert config.budget_seconds == 30.0  # the environment wins over the file


def test_load_config_missing_file_is_defaults(tmp_path):
    assert load_config(tmp_path) == Config()
    assert load_config(tmp_path, env={"AUTORESEARCH_TAG": "x"}).tag == "x"


def test_load_config_empty_file_is_defaults(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("# nothing set\n")
    assert load_config(tmp_path) == Config()


def test_load_config_invalid_yaml(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("tag: [unclosed\nbudget_seconds: 5\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path)


def test_load_config_unknown_key_names_the_file(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("budget_second: 60\n")
    with pytest.raises(ConfigError, match=r"autoresearch\.yaml: unknown setting .*budget_seconds"):
        load_config(tmp_path)


def test_load_config_explicit_path(tmp_path):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("tag: custom\n")
    (tmp_path / CONFIG_FILE).write_text("tag: ignored\n")
    assert load_config(tmp_path, path=other).tag == "custom"


def test_load_config_explicit_path_missing_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist: check the --config path"):
        load_config(tmp_path, path=tmp_path / "nope.yaml")
