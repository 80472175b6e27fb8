"""tercet.core.config: loading, validation messages, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from tercet.core.config import (
    DEFAULT_MODULES,
    Config,
    ConfigError,
    ConfigProblem,
    Option,
    Schema,
    core_schema,
)
from tercet.core.modulemanager import builtin_schema

GOOD = """\
admins = ["admin@example.org"]
c2s_ports = [5222, 5322]
scram_iterations = 8192
storage = { default = "sqlite", roster = "memory" }
log = { level = "debug", file = "logs/tercet.log" }

[virtualhosts."Example.ORG"]
allow_registration = true
scram_iterations = 10000

[virtualhosts."old.example.org"]
enabled = false

[components."conference.example.org"]
module = "muc"
"""


def write(tmp_path: Path, text: str, name: str = "tercet.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_errors(tmp_path: Path, text: str) -> list[ConfigProblem]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    return info.value.problems


def one_error(tmp_path: Path, text: str) -> ConfigProblem:
    problems = load_errors(tmp_path, text)
    assert len(problems) == 1, problems
    return problems[0]


# -- a good file ---------------------------------------------------------------------------


def test_good_config_loads(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, GOOD))
    assert config.path == tmp_path / "tercet.toml"
    assert config.hosts == ["example.org"]
    assert config.components == {"conference.example.org": "muc"}
    assert config.problems == []
    assert config.check() == []


def test_lookup_order_host_global_default(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, GOOD))
    assert config.get("scram_iterations", "example.org") == 10000
    assert config.get("scram_iterations", "EXAMPLE.org") == 10000
    assert config.get("scram_iterations") == 8192
    assert config.get("scram_iterations", "conference.example.org") == 8192
    assert config.get("allow_registration", "example.org") is True
    assert config.get("allow_registration") is False              # schema default
    assert config.get("modules_enabled") == list(DEFAULT_MODULES)
    assert config.get("no_such_option", default=7) == 7
    assert config.get("module", "conference.example.org") == "muc"
    assert config.get_host_only("allow_registration", "example.org") is True
    assert config.get_host_only("scram_iterations", "conference.example.org") is None


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, GOOD))
    assert config.data_path == tmp_path / "data"
    assert config.resolve_path("admin_socket") == tmp_path / "data" / "admin.sock"
    assert config.resolve_path("installer_plugin_path") == tmp_path / "data" / "plugins"
    assert config.resolve_path("certificates") == tmp_path / "certs"
    assert config.resolve_path("certificate", "example.org") is None
    assert config.logging().level == "debug"
    assert config.logging().file == tmp_path / "logs" / "tercet.log"


def test_absolute_data_path(tmp_path: Path) -> None:
    config = Config.from_text(f'data_path = "{tmp_path}/var"\n', tmp_path / "t.toml")
    assert config.data_path == tmp_path / "var"


def test_modules_for_host_unions_enabled_and_removes_disabled(tmp_path: Path) -> None:
    config = Config.from_text(
        'modules_enabled = ["ping", "disco"]\nmodules_disabled = ["disco"]\n'
        '[virtualhosts."a.example"]\nmodules_enabled = ["mam"]\nmodules_disabled = ["ping"]\n'
        '[virtualhosts."b.example"]\n', tmp_path / "t.toml")
    assert config.modules_for_host("a.example") == ["mam"]
    assert config.modules_for_host("b.example") == ["ping"]


def test_idn_host_names_are_normalised() -> None:
    config = Config.from_text('[virtualhosts."BÜCHER.example"]\n')
    assert config.hosts == ["bücher.example"]
    assert config.get("c2s_timeout", "xn--bcher-kva.example") == 60


# -- type errors name file, key, expected, found and fix ----------------------------------


def test_wrong_type_names_file_key_expected_found(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'c2s_timeout = "sixty"\n')
    text = str(problem)
    assert problem.file == str(tmp_path / "tercet.toml")
    assert problem.key == "c2s_timeout"
    assert problem.line == 1
    assert f"{tmp_path / 'tercet.toml'}:1: error: c2s_timeout:" in text
    assert "expected an integer" in text
    assert 'found a string ("sixty")' in text
    assert "c2s_timeout = 60" in problem.fix


def test_wrong_type_in_host_table_gives_dotted_path_and_line(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '\n[virtualhosts."example.org"]\nc2s_require_encryption = 1\n')
    assert problem.key == 'virtualhosts."example.org".c2s_require_encryption'
    assert problem.line == 3
    assert "expected true or false, found an integer (1)" in problem.message


def test_string_instead_of_list_suggests_brackets(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'admins = "admin@example.org"\n')
    assert problem.message == 'expected a list of strings, found a string ("admin@example.org")'
    assert 'admins = ["admin@example.org"]' in problem.fix


def test_quoted_number_suggests_removing_quotes(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'c2s_stanza_size_limit = "300000"\n')
    assert "Remove the quotes: c2s_stanza_size_limit = 300000" in problem.fix


def test_bad_list_item_is_pointed_at(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'c2s_ports = [5222, "5223"]\n')
    assert "item 2 is a string" in problem.message


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    problem = one_error(tmp_path, "offline_message_limit = true\n")
    assert "expected an integer, found true or false (true)" in problem.message


@pytest.mark.parametrize(("text", "expected"), [
    ("scram_iterations = 1000\n", "from 4096 to 1000000"),
    ("scram_iterations = 2000000\n", "from 4096 to 1000000"),
    ("c2s_stanza_size_limit = 9999\n", "from 10000"),
    ("c2s_ports = [65536]\n", "from 0 to 65535"),
])
def test_bounds(tmp_path: Path, text: str, expected: str) -> None:
    problem = one_error(tmp_path, text)
    assert expected in problem.message
    assert problem.fix.startswith("Set ")


def test_choice_with_did_you_mean(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'authentication = "internal_hash"\n')
    assert 'expected one of "internal_hashed", "anonymous"' in problem.message
    assert 'Did you mean "internal_hashed"?' in problem.fix


@pytest.mark.parametrize(("text", "key", "expected"), [
    ('admins = ["admin"]\n', "admins", "bare JIDs"),
    ('admins = ["a@example.org/phone"]\n', "admins", "bare JIDs"),
    ('c2s_interfaces = ["localhost"]\n', "c2s_interfaces", "IP addresses"),
    ('log = "loud"\n', "log", "a level among"),
    ('log = { level = "info", path = "x" }\n', "log", "keys level and file"),
    ('plugin_repositories = ["ftp://x"]\n', "plugin_repositories", "http(s)"),
    ('contact_info = { admins = ["mailto:a@b"] }\n', "contact_info", "XEP-0157"),
    ("storage = 3\n", "storage", "a string or a table"),
    ('tls_min_version = "1.1"\n', "tls_min_version", 'one of "1.2", "1.3"'),
])
def test_value_checks(tmp_path: Path, text: str, key: str, expected: str) -> None:
    problem = one_error(tmp_path, text)
    assert problem.key == key
    assert expected in problem.message


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    problems = load_errors(tmp_path, 'c2s_timeout = "x"\nsasl_max_failures = 0\n')
    assert [p.key for p in problems] == ["c2s_timeout", "sasl_max_failures"]
    assert all(str(tmp_path) in str(p) for p in problems)


def test_port_in_both_lists(tmp_path: Path) -> None:
    problem = one_error(tmp_path, "c2s_ports = [5222]\nc2s_direct_tls_ports = [5222]\n")
    assert "found 5222 in both" in problem.message


def test_port_zero_lets_the_os_choose(tmp_path: Path) -> None:
    config = Config.from_text("c2s_ports = [0]\nc2s_direct_tls_ports = [0]\n")
    assert config.get("c2s_ports") == [0]


def test_certificate_without_key(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '[virtualhosts."example.org"]\ncertificate = "a.crt"\n')
    assert problem.key == 'virtualhosts."example.org".key'
    assert problem.line == 1          # the table's heading: the key itself is missing


# -- unknown keys and warnings ------------------------------------------------------------


def test_unknown_key_warns_with_did_you_mean(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, 'c2s_port = [5222]\n[virtualhosts."x.example"]\n'))
    [problem] = config.problems
    assert problem.severity == "warning"
    assert problem.key == "c2s_port"
    assert problem.line == 1
    assert "unknown option 'c2s_port'" in problem.message
    assert 'Did you mean "c2s_ports"?' in problem.fix


def test_a_key_is_known_once_a_module_declares_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'muc_log = true\n[virtualhosts."x.example"]\n')
    assert [p.key for p in Config.load(path).check()] == ["muc_log"]
    schema = core_schema().extended([Option("muc_log", bool, False, "Log rooms.", owner="muc")])
    assert Config.load(path, schema=schema).check() == []


def test_module_options_are_unknown_to_the_core_alone(tmp_path: Path) -> None:
    path = write(tmp_path, 'c2s_timeout = 30\n[virtualhosts."x.example"]\n')
    assert Config.load(path).problems == []                  # every declared option
    [problem] = Config.load(path, schema=core_schema()).problems
    assert "unknown option 'c2s_timeout'" in problem.message


def test_global_option_in_host_table_warns(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, '[virtualhosts."x.example"]\ndata_path = "elsewhere"\n'))
    [problem] = config.problems
    assert problem.key == 'virtualhosts."x.example".data_path'
    assert "global option" in problem.message
    assert "above the first" in problem.fix


def test_no_virtual_host_warns(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, "c2s_timeout = 30\n"))
    assert [p.key for p in config.problems] == ["virtualhosts"]


def test_global_modules_enabled_without_the_defaults_warns(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, 'modules_enabled = ["roster", "mam"]\n'
                                         '[virtualhosts."x.example"]\n'))
    [problem] = config.problems
    assert problem.key == "modules_enabled" and problem.severity == "warning"
    assert "disco" in problem.message and "roster" not in problem.message
    assert "c2s" not in problem.message  # always loaded: nothing is lost
    full = ", ".join(f'"{m}"' for m in DEFAULT_MODULES)
    quiet = Config.load(write(tmp_path, f'modules_enabled = [{full}, "mam"]\n'
                                        '[virtualhosts."x.example"]\n'))
    assert quiet.problems == []


def test_admin_on_unknown_host_and_insecure_settings_warn(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, (
        'admins = ["me@elsewhere.example"]\nc2s_require_encryption = false\n'
        'allow_unencrypted_plain_auth = true\n[virtualhosts."x.example"]\n')))
    assert {p.key for p in config.problems} == {
        "admins", "c2s_require_encryption", "allow_unencrypted_plain_auth"}
    assert all(p.severity == "warning" for p in config.problems)


def test_unknown_storage_driver_is_only_a_warning(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, 'storage = "redis"\n[virtualhosts."x.example"]\n'))
    [problem] = config.problems
    assert problem.key == "storage"
    assert "plugin" in problem.fix


# -- hosts and components ------------------------------------------------------------------


def test_component_needs_module_or_secret(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '[components."conference.example.org"]\nname = "Rooms"\n')
    assert problem.key == 'components."conference.example.org".module'
    assert "component_secret" in problem.message and "found neither" in problem.message
    assert 'module = "muc"' in problem.fix and "component_secret = " in problem.fix


def test_component_with_a_secret_is_external(tmp_path: Path) -> None:
    """As in Prosody: a secret and no module is an external component (XEP-0114)."""
    config = Config.load(write(tmp_path, '[virtualhosts."a.example"]\n'
                               '[components."gw.a.example"]\ncomponent_secret = "s"\n'),
                         schema=builtin_schema())
    assert config.components == {"gw.a.example": "component"}
    assert config.problems == []


def test_component_secret_with_another_module_warns(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, '[virtualhosts."a.example"]\n'
                               '[components."c.a.example"]\nmodule = "muc"\n'
                               'component_secret = "s"\n'), schema=builtin_schema())
    [problem] = config.problems
    assert problem.severity == "warning"
    assert problem.key == 'components."c.a.example".component_secret'


def test_component_interfaces_off_loopback_warn(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, 'component_interfaces = ["127.0.0.1", "*"]\n'
                               '[virtualhosts."a.example"]\n'), schema=builtin_schema())
    [problem] = config.problems
    assert problem.severity == "warning" and problem.key == "component_interfaces"
    assert "not encrypted" in problem.message


def test_component_module_must_be_a_string(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '[components."c.example"]\nmodule = 1\n')
    assert "found an integer (1)" in problem.message


def test_invalid_host_name(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '[virtualhosts."bad host!"]\n')
    assert problem.key == 'virtualhosts."bad host!"'
    assert "valid domain name" in problem.message


def test_same_host_twice_after_normalisation(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '[virtualhosts."a.example"]\n[virtualhosts."A.example"]\n')
    assert "same host" in problem.message


def test_host_and_component_collide(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '[virtualhosts."a.example"]\n'
                                  '[components."a.example"]\nmodule = "muc"\n')
    assert "both as a virtual host and as a component" in problem.message


def test_virtualhosts_must_be_tables(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'virtualhosts = ["example.org"]\n')
    assert problem.key == "virtualhosts"
    assert "[virtualhosts." in problem.fix


def test_enabled_must_be_boolean(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '[virtualhosts."a.example"]\nenabled = "no"\n')
    assert problem.key == 'virtualhosts."a.example".enabled'


def test_disabled_component_is_not_listed(tmp_path: Path) -> None:
    config = Config.load(write(tmp_path, '[virtualhosts."a.example"]\n'
                               '[components."c.a.example"]\nmodule = "muc"\nenabled = false\n'))
    assert config.components == {}
    assert config.is_component("c.a.example")


# -- file level errors ---------------------------------------------------------------------


def test_toml_syntax_error_reports_file_and_line(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'c2s_timeout = 60\n\nadmins = { "me@example.org" }\n')
    assert problem.line == 3
    assert str(problem).startswith(f"{tmp_path / 'tercet.toml'}:3: error:")
    assert "TOML syntax error" in problem.message
    assert "not { } as in Prosody" in problem.fix


def test_missing_file(tmp_path: Path) -> None:
    problem = one_error_missing(tmp_path / "nope.toml")
    assert "not found" in problem.message
    assert "tercet init" in problem.fix


def one_error_missing(path: Path) -> ConfigProblem:
    with pytest.raises(ConfigError) as info:
        Config.load(path)
    [problem] = info.value.problems
    return problem


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "tercet.toml"
    path.write_bytes(b'c2s_timeout = 60\nadmins = ["\xff"]\n')
    problem = one_error_missing(path)
    assert problem.line == 2
    assert "UTF-8" in problem.message


# -- declarations and the typed getter -----------------------------------------------------

MAX_ROOMS = Option("max_rooms", int, 10, "Rooms per user.", min=1, max=20, owner="muc")
RATIO = Option("ratio", float, 1.5, "A ratio.", owner="muc")
MODE = Option("mode", str, "slow", "How fast.", choices=("Fast", "slow"), owner="muc")


def test_option_typed_getter(tmp_path: Path) -> None:
    config = Config.from_text('max_rooms = 5\nratio = 2\n[virtualhosts."a.example"]\n'
                              'max_rooms = "many"\nmode = "fast"\n', tmp_path / "t.toml",
                              schema=core_schema())  # undeclared here: read, then checked
    assert config.option(MAX_ROOMS) == 5
    assert config.option(RATIO) == 2                            # floats accept integers
    assert config.option(MODE) == "slow"                         # the declared default
    missing = Option("missing", list[int], [1], "A list.")
    config.option(missing).append(2)                             # a copy of the default
    assert config.option(missing, "a.example") == [1]
    with pytest.raises(ConfigError) as info:
        config.option(MAX_ROOMS, "a.example")
    [problem] = info.value.problems
    assert problem.key == 'virtualhosts."a.example".max_rooms'
    assert problem.line == 4
    assert 'expected an integer, found a string ("many")' in problem.message
    with pytest.raises(ConfigError, match='Did you mean "Fast"'):
        config.option(MODE, "a.example")


def test_declared_option_validates_and_documents() -> None:
    rooms = Option("muc_max_widgets", int, 100, "Rooms per service.", min=1,
                   cite="XEP-0045 §10.1", owner="muc")
    schema = core_schema().extended([rooms])
    text = '[virtualhosts."a.example"]\nmuc_max_widgets = 0\n'
    assert Config.from_text(text).check() != []        # nobody declares it: a warning
    with pytest.raises(ConfigError, match="muc_max_widgets"):
        Config.from_text(text, schema=schema)
    assert "## Module `muc`" in schema.to_markdown()
    assert "Rooms per service. (min 1; XEP-0045 §10.1) |" in schema.to_markdown()
    assert "muc_max_widgets" not in core_schema()


def test_bound_violation_names_file_key_and_fix(tmp_path: Path) -> None:
    problem = one_error(tmp_path, '[virtualhosts."a.example"]\nprivate_max_items = 0\n')
    assert problem.file == str(tmp_path / "tercet.toml")
    assert problem.key == 'virtualhosts."a.example".private_max_items'
    assert problem.line == 2
    assert problem.message == "expected a value from 1 to 100000, found 0"
    assert problem.fix == "Set private_max_items = 1 (the minimum) or more."
    assert str(problem).startswith(
        f"{tmp_path / 'tercet.toml'}:2: error: virtualhosts.\"a.example\".private_max_items:")


def test_schema_owners() -> None:
    x = Option("x", int, 1, "X.", owner="a")
    schema = Schema([x, x])                                       # same declaration: fine
    assert Schema([x, Option("x", int, 2, "X, changed.", owner="a")]).get("x") == Option(
        "x", int, 2, "X, changed.", owner="a")                    # same owner replaces
    with pytest.raises(ValueError, match="declared by both a and b"):
        schema.extended([Option("x", str, "1", "X.", owner="b")])


def test_options_are_frozen_and_typed() -> None:
    option = Option("x", int, 1, "X.")
    with pytest.raises(AttributeError):
        option.default = 2  # type: ignore[misc]
    assert Option[str | None]("y", str, None, "Y.").default_text() == "(none)"


def test_reference_groups_options_by_owner_with_cites() -> None:
    text = builtin_schema().to_markdown()
    assert text.startswith("## Core options\n")
    core, _, modules = text.partition("## Module `")
    for name in ("admins", "scram_iterations", "admin_socket", "installer_plugin_path"):
        assert f"`{name}`" in core
    for name in ("c2s_ports", "allow_registration", "offline_message_limit", "contact_info"):
        assert f"`{name}`" not in core and f"`{name}`" in modules
    assert "<data_path>/admin.sock" in core
    assert "(min 4096, max 1000000; RFC 7677 §4)" in core
    assert "(min 10000, max 16777216; RFC 6120 §13.12)" in modules


def test_unclosed_array_points_at_the_end(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'c2s_timeout = 60\nadmins = ["a@example.org"\n')
    assert problem.line == 2
    assert "Unclosed array at the end of the file" in problem.message
    assert "missing ]" in problem.fix


def test_host_location_uses_the_name_as_written(tmp_path: Path) -> None:
    config = Config.from_text('c2s_timeout = 5\n\n[virtualhosts."Example.ORG"]\n', "t.toml")
    assert config.host_location("example.org") == ('virtualhosts."Example.ORG"', 3)
    assert config.file == "t.toml"


def test_bool_fix_names_both_values(tmp_path: Path) -> None:
    problem = one_error(tmp_path, 'hide_os_type = "yes"\n')
    assert problem.fix == "Write hide_os_type = true or hide_os_type = false."
