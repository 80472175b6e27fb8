"""The plugin format checks, on wheels written by hand (no build backend needed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tercet.plugins.package import PluginFormatError, TercetMeta, inspect_wheel


def make_wheel(
    directory: Path,
    dist: str = "tercet_mod_motd",
    version: str = "1.0.0",
    *,
    entry_points: str = "[tercet.modules]\nmotd = tercet_mod_motd\n",
    requires: tuple[str, ...] = (),
    name_in_metadata: str = "tercet-mod-motd",
) -> Path:
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name_in_metadata}\nVersion: {version}\n"
    metadata += "Summary: test\nRequires-Python: >=3.11\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}/__init__.py", "def load(module): pass\n")
        zf.writestr(f"{info}/METADATA", metadata)
        if entry_points:
            zf.writestr(f"{info}/entry_points.txt", entry_points)
        zf.writestr(f"{info}/RECORD", "")
    return path


def test_a_good_wheel(tmp_path: Path) -> None:
    info = inspect_wheel(make_wheel(tmp_path, requires=("aiohttp>=3",)))
    assert (info.distribution, info.version, info.module, info.entry) == (
        "tercet-mod-motd", "1.0.0", "motd", "tercet_mod_motd")
    assert info.requires_python == ">=3.11"
    assert info.dependencies == ("aiohttp>=3",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"entry_points": ""}, "entry_points.txt is missing"),
        ({"entry_points": "[console_scripts]\nx = y\n"}, "no entry point in group"),
        ({"entry_points": "[tercet.modules]\nmotd = a\nother = b\n"}, "exactly one"),
        ({"entry_points": "[tercet.modules]\nMotd-X = a\n"}, "not a valid module name"),
        ({"entry_points": "[tercet.modules]\nping = a\n"}, "must be published as"),
        ({"requires": ("tercet>=0.1",)}, "must not depend on 'tercet'"),
        ({"requires": ("tercet-mod-other",)}, "declare it in [tool.tercet] requires"),
        ({"name_in_metadata": "something-else"}, "file name disagrees"),
    ],
)
def test_bad_wheels_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(PluginFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        inspect_wheel(make_wheel(tmp_path, **kwargs))


def test_truncated_wheel_is_refused(tmp_path: Path) -> None:
    path = make_wheel(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PluginFormatError, match="not a valid wheel"):
        inspect_wheel(path)


def test_crc_damage_is_refused(tmp_path: Path) -> None:
    path = make_wheel(tmp_path)
    data = bytearray(path.read_bytes())
    offset = data.index(b"def load")  # stored uncompressed: flip a byte of the content
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(PluginFormatError, match="CRC"):
        inspect_wheel(path)


def test_bad_file_name(tmp_path: Path) -> None:
    path = tmp_path / "not-a-wheel.whl"
    path.write_bytes(b"")
    with pytest.raises(PluginFormatError):
        inspect_wheel(path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"stage": "gamma"}, "stage must be one of"),
        ({"xeps": ["0045"]}, "like XEP-0045"),
        ({"xeps": "XEP-0045"}, "list of strings"),
        ({"tercet": "0.1"}, "not a PEP 440 specifier"),
        ({"requires": ["bad flag"]}, "module name or feature flag"),
        ({"summary": 3}, "summary must be a string"),
    ],
)
def test_tercet_table_validation(table: dict, message: str) -> None:
    with pytest.raises(PluginFormatError, match=message):
        TercetMeta.from_table(table)


def test_tercet_table_defaults() -> None:
    meta = TercetMeta.from_table({"xeps": ["XEP-0045"], "tercet": ">=0.1,<0.2"})
    assert meta == TercetMeta(summary="", stage="alpha", xeps=("XEP-0045",), tercet=">=0.1,<0.2")
