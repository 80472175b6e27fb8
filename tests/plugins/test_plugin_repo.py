"""Building a plugin repository: index, catalog, pages, incremental rebuilds, serving."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from plugin_helpers import COMPATIBLE, Repo, tree_snapshot, write_plugin

from tercet.plugins.repo import build_repository

MOTD_WHEEL = "tercet_mod_motd-1.0.0-py3-none-any.whl"
WELCOME_WHEEL = "tercet_mod_welcome-0.3.0-py3-none-any.whl"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def catalog(repo: Repo) -> dict:
    return {m["name"]: m for m in json.loads((repo.out / "catalog.json").read_text())["modules"]}


def test_layout(built_repo: Repo) -> None:
    files = set(tree_snapshot(built_repo.out))
    assert files == {
        ".build-state.json", "catalog.json", "index.html",
        "simple/index.html", "simple/tercet-mod-motd/index.html",
        "simple/tercet-mod-welcome/index.html",
        "modules/motd.html", "modules/welcome.html",
        f"files/{MOTD_WHEEL}", f"files/{WELCOME_WHEEL}",
    }


def test_sources_stay_clean(built_repo: Repo) -> None:
    left = {p.name for p in (built_repo.src / "motd").iterdir()}
    assert left == {"pyproject.toml", "README.md", "tercet_mod_motd"}


def test_pep503_index(built_repo: Repo) -> None:
    root = (built_repo.out / "simple" / "index.html").read_text()
    assert re.findall(r'<a href="([^"]+)">', root) == ["tercet-mod-motd/", "tercet-mod-welcome/"]
    page = (built_repo.out / "simple" / "tercet-mod-motd" / "index.html").read_text()
    digest = sha256(built_repo.out / "files" / MOTD_WHEEL)
    assert (f'<a href="../../files/{MOTD_WHEEL}#sha256={digest}" '
            f'data-requires-python="&gt;=3.11">{MOTD_WHEEL}</a>') in page


def test_catalog(built_repo: Repo) -> None:
    modules = catalog(built_repo)
    assert sorted(modules) == ["motd", "welcome"]
    welcome = modules["welcome"]
    assert welcome["distribution"] == "tercet-mod-welcome"
    assert (welcome["stage"], welcome["xeps"], welcome["requires"], welcome["conflicts"]) == (
        "alpha", ["XEP-0199"], ["motd"], ["legacy_welcome"])
    assert welcome["tercet"] == COMPATIBLE
    assert welcome["docs"] == "modules/welcome.html"
    [version] = welcome["versions"]
    wheel = built_repo.out / "files" / WELCOME_WHEEL
    assert version == {
        "version": "0.3.0", "file": WELCOME_WHEEL, "url": f"files/{WELCOME_WHEEL}",
        "sha256": sha256(wheel), "size": wheel.stat().st_size, "requires_python": ">=3.11",
        "dependencies": [], "summary": "welcome for tests", "stage": "alpha",
        "xeps": ["XEP-0199"], "requires": ["motd"], "conflicts": ["legacy_welcome"],
        "tercet": COMPATIBLE,
    }


def test_readme_is_rendered_safely(built_repo: Repo) -> None:
    html = catalog(built_repo)["motd"]["readme_html"]
    assert "<h1>motd</h1>" in html
    assert "<em>message of the day</em>" in html
    assert '<pre><code class="language-toml">motd_text = "Hello &lt;b&gt;world&lt;/b&gt;"' in html
    assert "&lt;script&gt;" in html and "<script" not in html
    page = (built_repo.out / "modules" / "motd.html").read_text()
    assert html in page
    assert "<script" not in page


def test_index_page(built_repo: Repo) -> None:
    page = (built_repo.out / "index.html").read_text()
    assert '<a href="modules/motd.html">motd</a>' in page
    assert '<a href="modules/welcome.html">welcome</a>' in page
    assert '<span class="stage alpha">alpha</span>' in page
    assert "XEP-0199" in page
    assert f'<a href="files/{MOTD_WHEEL}">1.0.0</a>' in page


def test_rebuild_without_changes_is_a_no_op(repo: Repo) -> None:
    before = tree_snapshot(repo.out)
    mtimes = {p: p.stat().st_mtime_ns for p in repo.out.rglob("*") if p.is_file()}
    report = build_repository(repo.src, repo.out)
    assert report.built == [] and report.failed == []
    assert report.unchanged == ["motd", "welcome"]
    assert tree_snapshot(repo.out) == before
    assert {p: p.stat().st_mtime_ns for p in repo.out.rglob("*") if p.is_file()} == mtimes


def test_a_new_version_is_added_and_history_kept(repo: Repo) -> None:
    old_wheel = (repo.out / "files" / MOTD_WHEEL).read_bytes()
    welcome_wheel = (repo.out / "files" / WELCOME_WHEEL).read_bytes()
    write_plugin(repo.src, "motd", "1.1.0", summary="Message of the day, improved")
    progress: list[str] = []
    report = build_repository(repo.src, repo.out, progress=progress.append)
    assert [(b.module, b.version) for b in report.built] == [("motd", "1.1.0")]
    assert report.unchanged == ["welcome"]
    assert "building motd ..." in progress
    assert (repo.out / "files" / MOTD_WHEEL).read_bytes() == old_wheel
    assert (repo.out / "files" / WELCOME_WHEEL).read_bytes() == welcome_wheel
    motd = catalog(repo)["motd"]
    assert motd["latest"] == "1.1.0"
    assert motd["summary"] == "Message of the day, improved"
    assert [v["version"] for v in motd["versions"]] == ["1.1.0", "1.0.0"]
    page = (repo.out / "simple" / "tercet-mod-motd" / "index.html").read_text()
    assert MOTD_WHEEL in page and "tercet_mod_motd-1.1.0-py3-none-any.whl" in page
    # And building once more changes nothing.
    before = tree_snapshot(repo.out)
    assert build_repository(repo.src, repo.out).built == []
    assert tree_snapshot(repo.out) == before


def test_same_version_with_new_content_is_refused(repo: Repo) -> None:
    before = tree_snapshot(repo.out)
    (repo.src / "motd" / "tercet_mod_motd" / "extra.py").write_text("X = 1\n")
    report = build_repository(repo.src, repo.out)
    assert report.built == []
    assert [f for f, _ in report.failed] == ["motd"]
    assert "already published with different content" in report.failed[0][1]
    assert tree_snapshot(repo.out) == before
    replaced = build_repository(repo.src, repo.out, replace_existing=True)
    assert [(b.module, b.version) for b in replaced.built] == [("motd", "1.0.0")]
    assert catalog(repo)["motd"]["versions"][0]["sha256"] == sha256(repo.out / "files" /
                                                                     MOTD_WHEEL)


def test_a_bad_plugin_fails_alone(repo: Repo) -> None:
    write_plugin(repo.src, "bad", "1.0.0", dependencies=("tercet>=0.1",))
    write_plugin(repo.src, "noversion", "1.0.0", tercet="not a specifier")
    report = build_repository(repo.src, repo.out)
    failures = dict(report.failed)
    assert "must not depend on 'tercet'" in failures["bad"]
    assert "not a PEP 440 specifier" in failures["noversion"]
    assert report.unchanged == ["motd", "welcome"]
    assert sorted(catalog(repo)) == ["motd", "welcome"]


def test_state_loss_keeps_history(repo: Repo) -> None:
    write_plugin(repo.src, "motd", "1.1.0")
    repo.rebuild()
    (repo.out / ".build-state.json").unlink()
    repo.rebuild()  # rebuilds 1.1.0 (same bytes) and keeps 1.0.0 from the catalog
    assert [v["version"] for v in catalog(repo)["motd"]["versions"]] == ["1.1.0", "1.0.0"]


def test_missing_source_dir(tmp_path: Path) -> None:
    from tercet.plugins.repo import BuildError

    with pytest.raises(BuildError, match="not a directory"):
        build_repository(tmp_path / "nope", tmp_path / "out")


def test_serving(built_repo: Repo, http_repo: str) -> None:
    assert http_repo.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(http_repo + "catalog.json", timeout=5) as response:
        assert response.read() == (built_repo.out / "catalog.json").read_bytes()
    with urllib.request.urlopen(http_repo + "simple/tercet-mod-motd/", timeout=5) as response:
        assert MOTD_WHEEL in response.read().decode()
    for hidden in (".build-state.json", "%2ebuild-state.json", "files/../.build-state.json"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(http_repo + hidden, timeout=5)
        assert info.value.code == 404
