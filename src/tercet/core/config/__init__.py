"""The server configuration: a TOML file checked against the options that are declared.

Layout of the file (option names follow Prosody's where the concept is the same)::

    admins = ["admin@example.org"]          # global options at the top
    c2s_ports = [5222]

    [virtualhosts."example.org"]            # per-host overrides, plus `enabled`
    allow_registration = true

    [components."conference.example.org"]   # components need `module`, or
    module = "muc"                          # `component_secret` (external, XEP-0114)

Options are data: the core declares its own (``core_options``), every module declares the
ones it owns in a module-level ``OPTIONS`` list of :class:`Option`, and
``tercet.core.modulemanager.declared_schema`` collects them into one :class:`Schema`. The
operator reference page is generated from it (:meth:`Schema.to_markdown`).

Parts: ``schema`` (declarations and value checks), ``validation`` (a parsed file against a
schema, with source locations), ``loaded`` (the :class:`Config` object), ``core_options``.
Known keys are type-checked when the file is loaded (errors raise :class:`ConfigError`);
unknown keys only produce warnings. Every problem names the file, the dotted key, what was
expected, what was found and how to fix it.
"""

from .core_options import ALWAYS_LOADED, CORE_OPTIONS, DEFAULT_MODULES, core_schema
from .loaded import Config, LogSettings, plugin_path_of
from .schema import (
    Invalid,
    Option,
    PathBase,
    Schema,
    Scope,
    Severity,
    Validator,
    check_value,
    describe_type,
    did_you_mean,
    normalize_host,
    toml_repr,
    valid_bare_jids,
    valid_interfaces,
    valid_urls,
)
from .validation import ConfigError, ConfigProblem, dotted

__all__ = [
    "ALWAYS_LOADED",
    "CORE_OPTIONS",
    "DEFAULT_MODULES",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Invalid",
    "LogSettings",
    "Option",
    "PathBase",
    "Schema",
    "Scope",
    "Severity",
    "Validator",
    "check_value",
    "core_schema",
    "describe_type",
    "did_you_mean",
    "dotted",
    "normalize_host",
    "plugin_path_of",
    "toml_repr",
    "valid_bare_jids",
    "valid_interfaces",
    "valid_urls",
]
