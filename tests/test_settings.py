"""Settings files: genbench.toml and [tool.genbench] in pyproject.toml, their precedence (flags > genbench.toml >
pyproject.toml > defaults), user-defined profiles and the comparability key, one-line errors, and what run.json
records."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from click.testing import CliRunner

import genbench
from genbench.cli import cli
from genbench.comparability import differing
from genbench.errors import ConfigError
from genbench.schemas import validate
from genbench.settings import UserProfile, load_settings

NO_FLAGS = dict(models=(), all=False, tasks=(), profile=None, seeds=None, seed=None, device=None, out=None, jobs=None)


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def both_files(tmp_path):
    write(tmp_path / "pyproject.toml", """
        [project]
        name = "someone-elses-project"

        [tool.genbench]
        models = ["tiny-ok"]
        tasks = ["digits"]
        profile = "smoke"
        seeds = [3]
        device = "cpu"
        jobs = 2
    """)
    write(tmp_path / "genbench.toml", """
        models = ["tiny-cached"]
        seeds = [1, 2]
        out = "my-runs"
    """)


def test_flags_beat_genbench_toml_which_beats_pyproject(tmp_path):
    both_files(tmp_path)
    settings = load_settings(tmp_path)
    assert [f.path.name for f in settings.files] == ["genbench.toml", "pyproject.toml"]

    options, used = settings.run_options(NO_FLAGS)
    assert options["models"] == ("tiny-cached",) and options["seeds"] == (1, 2)  # genbench.toml over pyproject.toml
    assert options["tasks"] == ("digits",) and options["profile"] == "smoke" and options["jobs"] == 2  # pyproject only
    assert options["out"] == str(tmp_path / "my-runs")  # relative to the file
    assert used["models"].endswith("genbench.toml") and used["profile"].endswith("pyproject.toml")

    flags = {**NO_FLAGS, "models": ("gan-x",), "seeds": (5,), "profile": "default", "tasks": ("text",), "jobs": 1}
    options, used = settings.run_options(flags)
    assert (options["models"], options["seeds"], options["profile"], options["tasks"], options["jobs"]) == \
        (("gan-x",), (5,), "default", ("text",), 1)
    assert set(used) == {"device", "out"}

    options, _ = settings.run_options({**NO_FLAGS, "seed": 7})  # --seed given: no seeds from a file
    assert options["seeds"] is None and options["seed"] == 7
    options, _ = settings.run_options({**NO_FLAGS, "all": True})  # --all: the files' models do not apply
    assert options["models"] == () and options["all"] is True


def test_no_files_means_built_in_defaults(tmp_path):
    assert load_settings(tmp_path).files == ()
    write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")  # a pyproject without [tool.genbench]: no settings
    settings = load_settings(tmp_path)
    assert settings.files == () and settings.run_options(NO_FLAGS) == (NO_FLAGS, {})
    assert load_settings(False).files == ()


def _run(host, tmp_path, settings, **kw):
    kw = {"baselines": False, "timing": False, "executor": "inline", "device": "cpu", "out": tmp_path / "runs", **kw}
    return genbench.run(host=host, settings=settings, **kw)


def test_a_run_takes_its_choices_from_the_file_and_records_it(fake_host, tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf / "genbench.toml", """
        models = ["tiny-ok"]
        tasks = ["digits"]
        profile = "quick"
        seeds = [0, 1]

        [profiles.quick]
        based_on = "smoke"
        samples = 100
        steps = 2
        batch_sizes = [1, 4]

        [profiles.quick.timing]
        min_iterations = 5
        max_seconds = 0.2
    """)
    result = _run(fake_host, tmp_path, conf)
    (job,) = result.jobs
    assert (job.model, job.task, job.status, list(job.seeds)) == ("tiny-ok", "digits", "ok", [0, 1])
    config = result.config
    assert config["profile"] == "smoke" and config["steps"] == 2  # plugins train as for the base profile
    assert config["user_profile"] == {"name": "quick", "based_on": "smoke", "samples": 100, "steps": 2,
                                      "batch_sizes": [1, 4], "timing": {"min_iterations": 5, "max_seconds": 0.2},
                                      "source": str(conf / "genbench.toml")}
    (record,) = config["settings"]["files"]
    assert record["path"] == str(conf / "genbench.toml") and record["table"] is None
    assert record["content"]["profiles"]["quick"]["samples"] == 100 and record["content"]["seeds"] == [0, 1]
    assert set(config["settings"]["used"]) == {"models", "tasks", "profile", "seeds"}
    fd = job.quality["fd"]
    assert fd.n == 100 and fd.key["profile"] == "smoke, steps=2" and fd.key["seeds"] == 2
    run_json = json.loads((tmp_path / "runs" / result.run_id / "run.json").read_text())
    validate(run_json, "genbench.run/2", "run.json")
    assert run_json["config"]["settings"] == config["settings"]
    report = (tmp_path / "runs" / result.run_id / "report.md").read_text()
    assert "- profile: quick (user profile based on smoke: samples 100, steps 2" in report


def test_a_user_profile_shares_a_key_with_a_built_in_one_only_when_its_numbers_are_computed_the_same(
        fake_host, tmp_path):
    write(tmp_path / "genbench.toml", """
        [profiles.same]
        based_on = "smoke"
        batch_sizes = [1]

        [profiles.fewer]
        based_on = "smoke"
        samples = 50

        [profiles.longer]
        based_on = "smoke"
        steps = 7
    """)
    common = dict(models=["tiny-ok"], tasks=["digits"])
    keys = {name: _run(fake_host, tmp_path, tmp_path, profile=name, **common).jobs[0].quality["fd"].key
            for name in ("smoke", "same", "fewer", "longer")}
    assert keys["same"] == keys["smoke"]  # only timing differs: the same numbers
    assert differing(keys["fewer"], keys["smoke"]) == ["n"]
    assert differing(keys["longer"], keys["smoke"]) == ["profile"] and keys["longer"]["profile"] == "smoke, steps=7"
    # the same training as the built-in profile with --steps 7: the same key (and the same cached model)
    flagged = _run(fake_host, tmp_path, tmp_path, profile="smoke", steps=7, **common).jobs[0].quality["fd"].key
    assert flagged == keys["longer"]
    # a --steps flag beats the profile's steps
    assert _run(fake_host, tmp_path, tmp_path, profile="longer", steps=3, **common).config["steps"] == 3


def test_a_user_profile_is_kept_through_resume(fake_host, tmp_path):
    write(tmp_path / "genbench.toml", """
        [profiles.quick]
        based_on = "smoke"
        samples = 60
    """)
    first = _run(fake_host, tmp_path, tmp_path, models=["tiny-ok"], tasks=["digits"], profile="quick", seeds=[0, 1])
    run_json = tmp_path / "runs" / first.run_id / "run.json"
    data = json.loads(run_json.read_text())
    job = data["jobs"][0]
    job.update(status="pending", seed_results=[job["seed_results"][0]])
    run_json.write_text(json.dumps(data))
    resumed = genbench.run(resume=run_json.parent, host=fake_host)
    assert resumed.jobs[0].status == "ok" and resumed.jobs[0].quality["fd"].n == 60
    assert resumed.config["user_profile"]["name"] == "quick"


@pytest.mark.parametrize("text, words", [
    ('profile = 3', ["profile = 3", "give a non-empty string"]),
    ('seeds = [0, 0]', ["seeds = [0, 0]", "different whole numbers"]),
    ('seeds = "0,1"', ["seeds = '0,1'", "e.g. [0, 1, 2]"]),
    ('models = "gan-mlp"', ["models = 'gan-mlp'", "list of names"]),
    ('jobs = 0', ["jobs = 0", "from 1 to 1024"]),
    ('device = "tpu"', ["device = 'tpu'", '"auto", "cpu" or "cuda"']),
    ('colour = "red"', ["colour = 'red'", "unknown key", "models, all, tasks, profile, seeds"]),
    ('[profiles.smoke]\nsamples = 5', ["profiles.smoke", "cannot be redefined"]),
    ('[profiles.q]\nsamples = 5', ["profiles.q.based_on = None", 'give "smoke" or "default"']),
    ('[profiles.q]\nbased_on = "default"\nsample = 5', ["profiles.q.sample = 5", "a profile takes based_on, samples"]),
    ('[profiles.q]\nbased_on = "default"\nsteps = -1', ["profiles.q.steps = -1", "from 0 to"]),
    ('[profiles.q]\nbased_on = "default"\n[profiles.q.timing]\nmin_seconds = "fast"',
     ["profiles.q.timing.min_seconds = 'fast'", "finite number"]),
    ('[profiles.q]\nbased_on = "default"\n[profiles.q.timing]\nbogus = 1', ["profiles.q.timing.bogus", "min_iterations"]),
    ('[compare]\ngate = "fd:5%"', ["compare.gate", "fail_on_regression, allow_incomparable"]),
    ('[compare]\nallow_incomparable = "yes"', ["compare.allow_incomparable = 'yes'", "true or false"]),
    ('models = [', ["not valid TOML"]),
])
def test_a_mistake_is_one_line_naming_the_file_the_key_and_what_is_allowed(tmp_path, text, words):
    path = write(tmp_path / "genbench.toml", text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for w in words:
        assert w in message, message


@pytest.mark.parametrize("file, text, words", [
    ("genbench.toml", 'models = ["tiny-ol"]\n', "models = ['tiny-ol'] is not allowed: Unknown model 'tiny-ol'. "
                                                  "Did you mean 'tiny-ok'"),
    ("genbench.toml", 'models = ["tiny-ok"]\ntasks = ["digitz"]\n', "tasks = ['digitz'] is not allowed: Unknown task "
                                                                   "'digitz'. Did you mean 'digits'?"),
    ("pyproject.toml", '[tool.genbench]\nmodels = ["tiny-ok", "tiny-okk"]\n',
     "pyproject.toml [tool.genbench]: models = ['tiny-ok', 'tiny-okk'] is not allowed: Unknown model 'tiny-okk'"),
])
def test_an_unknown_name_in_a_file_is_one_line_naming_the_file_and_the_key(fake_host, tmp_path, file, text, words):
    path = write(tmp_path / file, text)
    with pytest.raises(ConfigError) as caught:
        genbench.run(host=fake_host, settings=tmp_path, out=tmp_path / "runs", device="cpu")
    message = str(caught.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message, message
    assert not (tmp_path / "runs").exists()  # checked before anything is made, the --out folder included
    with pytest.raises(genbench.errors.UnknownNameError, match="^Unknown model 'gam-mlp'"):  # a flag's: as before
        genbench.run(["gam-mlp"], host=fake_host, settings=False, out=tmp_path / "runs")


@pytest.mark.parametrize("value, zero, words", [
    ("abc", False, "$GENBENCH_X='abc' is not allowed: give seconds, above 0 (or unset it)."),
    ("-1", True, "$GENBENCH_X='-1' is not allowed: give seconds, 0 or more (or unset it)."),
    ("nan", True, "$GENBENCH_X='nan' is not allowed"),
    ("inf", True, "$GENBENCH_X='inf' is not allowed"),
    ("0", False, "$GENBENCH_X='0' is not allowed: give seconds, above 0"),
])
def test_a_numeric_environment_variable_is_checked_and_named(monkeypatch, value, zero, words):
    from genbench.settings import env_number

    monkeypatch.setenv("GENBENCH_X", value)
    with pytest.raises(ConfigError) as caught:
        env_number("GENBENCH_X", 60.0, "seconds", zero=zero)
    assert str(caught.value) == words or str(caught.value).startswith(words)
    for good, want in (("2.5", 2.5), (" 0 ", 0.0), ("", 60.0)):
        monkeypatch.setenv("GENBENCH_X", good)
        assert env_number("GENBENCH_X", 60.0, "seconds", zero=True) == want
    monkeypatch.delenv("GENBENCH_X")
    assert env_number("GENBENCH_X", 60.0, "seconds") == 60.0


def test_a_bad_plugin_timeout_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("GENBENCH_PLUGIN_TIMEOUT", "abc")
    r = CliRunner().invoke(cli, ["list"])
    assert r.exit_code == 1 and r.output.strip() == ("error: $GENBENCH_PLUGIN_TIMEOUT='abc' is not allowed: give "
                                                     "seconds, 0 or more (or unset it).")


def test_a_mistake_in_pyproject_names_its_table(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.genbench]\nprofile = 1\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml \[tool.genbench\]: profile = 1 is not allowed"):
        load_settings(tmp_path)


def test_an_unknown_profile_names_the_ones_there_are(tmp_path):
    write(tmp_path / "genbench.toml", '[profiles.quick]\nbased_on = "smoke"\n')
    with pytest.raises(ConfigError, match=r"Unknown profile 'quik'. Did you mean 'quick'\?.*quick"):
        load_settings(tmp_path).profile("quik")


def test_user_profile_round_trips_and_refuses_a_bad_stored_one():
    profile = UserProfile("q", "default", samples=10, steps=None, batch_sizes=(1, 2), timing={"rounds": 1})
    assert UserProfile.from_dict(profile.to_dict()) == profile
    with pytest.raises(ConfigError):
        UserProfile.from_dict({**profile.to_dict(), "based_on": "huge"})
    derived = profile.derive(genbench.config.get_profile("default"))
    assert derived.max_samples == 10 and derived.batch_sizes == (1, 2) and derived.timing.rounds == 1


def test_the_command_line_reads_the_files_and_reproduces_with_every_choice(tmp_path, monkeypatch):
    import fakes

    monkeypatch.delenv("GENBENCH_SANDBOX", raising=False)  # the suite's none would be named in the command

    import genbench.plugins as plugins

    ep = type("EP", (), {"name": "fakes", "dist": None, "load": staticmethod(lambda: fakes.FakePlugin)})
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [ep] if group == "genbench" else [])
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "genbench.toml", """
        models = ["tiny-ok"]
        tasks = ["digits"]
        profile = "quick"
        out = "runs"
        [profiles.quick]
        based_on = "smoke"
        samples = 40
    """)
    r = CliRunner().invoke(cli, ["run", "--executor", "inline", "--no-timing", "--no-baselines", "--device", "cpu",
                                 "--threads", "1", "--train-threads", "2", "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "from genbench.toml: models, tasks, profile, out" in r.output
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    data = json.loads(run_json.read_text())
    assert data["command"] == ("genbench run tiny-ok --task digits --profile quick --seed 0 --device cpu --threads 1 "
                               "--train-threads 2 --jobs 1 --executor inline --no-baselines --no-timing")
    assert data["jobs"][0]["quality"]["fd"]["n"] == 40


def test_compare_takes_its_gate_from_the_file_unless_a_flag_is_given(fake_host, tmp_path, monkeypatch):
    runs = [_run(fake_host, tmp_path, False, models=["tiny-ok"], tasks=["digits"], profile="smoke") for _ in range(2)]
    dirs = [str(tmp_path / "runs" / r.run_id) for r in runs]
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "pyproject.toml", '[tool.genbench.compare]\nfail_on_regression = {fd = "5%", precision = 0.1}\n')
    r = CliRunner().invoke(cli, ["compare", *dirs, "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    validate(report, "genbench.compare/1", "compare --json")
    assert report["gate"]["spec"] == "fd:5%,precision:0.1"
    assert "note: --fail-on-regression 'fd:5%,precision:0.1' from" in r.stderr and "pyproject.toml" in r.stderr
    r = CliRunner().invoke(cli, ["compare", *dirs, "--json", "--fail-on-regression", "recall:1%"])
    assert json.loads(r.stdout)["gate"]["spec"] == "recall:1%" and "note:" not in r.stderr


def test_the_results_schema_doc_names_every_config_field_and_every_shipped_schema(fake_host, tmp_path):
    from pathlib import Path

    from genbench.schemas import SCHEMAS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "results-schema.md").read_text()
    config_table = doc.split("## `config`: every field")[1].split("\n## ")[0]
    write(tmp_path / "genbench.toml", '[profiles.q]\nbased_on = "smoke"\n')
    result = _run(fake_host, tmp_path, tmp_path, models=["tiny-ok"], tasks=["digits"], profile="q")
    fields = set(result.config) | {"resumed_at", "samples", "onnx"}  # after a --resume; score's runs; run --onnx
    documented = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)?(?:, `([a-z_]+)`)?", config_table, re.M))
    names = {n for row in documented for n in row if n}
    assert fields <= names, fields - names
    for name, file in SCHEMAS.items():
        assert f"`{name}`" in doc and f"`{file}`" in doc, name


@pytest.mark.parametrize("doc", ["docs/configuration.md", "README.md"])
def test_the_documented_example_configuration_works(tmp_path, doc):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / doc).read_text()
    (example,) = re.findall(r"```toml\n# genbench.toml\n(.*?)```", text, re.S)
    write(tmp_path / "genbench.toml", example)
    settings = load_settings(tmp_path)
    options, used = settings.run_options(NO_FLAGS)
    assert options["models"] == ("gan-mlp", "vae-mlp") and options["profile"] == "quick"
    assert options["seeds"] == (0, 1, 2) and set(used) == {"models", "tasks", "profile", "seeds"}
    quick = settings.profile("quick")
    assert (quick.based_on, quick.samples, quick.steps) == ("default", 2000, 1000)
    assert settings.compare_options(None, None)[0] == "fd:5%,latency_p50:10%"
