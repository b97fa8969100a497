"""The Debian mirror image builds use: --mirror, else ARCHMATRIX_DEBIAN_MIRROR, else the Debian archive
in this machine's apt sources (deb822 or one-line); never an Ubuntu mirror, and one clear line when
none is known. Fake sources dirs stand in for other machines (an Ubuntu host cannot be rehearsed here)."""
import subprocess
import sys

import pytest

from harness.common.errors import UserError
from harness.host import debian
from harness.matrix import platforms
from harness.nodes.images import build as images
from conftest import ROOT

DEB822_DEBIAN = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""
THIRD_PARTY = """Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""
UBUNTU = """Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://security.ubuntu.com/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(debian.ENV_MIRROR, raising=False)


def sources(tmp_path, files: dict[str, str], one_line: str | None = None):
    d = tmp_path / "sources.list.d"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    lst = tmp_path / "sources.list"
    if one_line is not None:
        lst.write_text(one_line)
    return {"sources_dir": str(d), "sources_list": str(lst)}


def test_deb822_debian_archive_is_found_past_third_party_and_security(tmp_path):
    where = sources(tmp_path, {"0-nodesource.sources": THIRD_PARTY, "debian.sources": DEB822_DEBIAN})
    assert debian.mirror(**where) == "http://deb.debian.org/debian"


def test_one_line_debian_archive_is_found(tmp_path):
    where = sources(tmp_path, {"google.list": "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"},
                    one_line="# a comment\ndeb-src http://ftp.de.debian.org/debian trixie main\n"
                             "deb [arch=amd64] http://ftp.de.debian.org/debian/ trixie main contrib\n")
    assert debian.mirror(**where) == "http://ftp.de.debian.org/debian"


def test_an_ubuntu_host_names_no_debian_mirror_and_says_both_ways_to_give_one(tmp_path):
    where = sources(tmp_path, {"ubuntu.sources": UBUNTU},
                    one_line="deb http://ports.ubuntu.com/ubuntu-ports jammy main\n")
    with pytest.raises(UserError) as e:
        debian.mirror(**where)
    msg = str(e.value)
    assert "\n" not in msg and "ubuntu" not in msg.split(";")[1]
    assert msg == (f"no Debian mirror known: the apt sources in {where['sources_list']} and {where['sources_dir']} "
                   "name no Debian archive; give one with --mirror URL or ARCHMATRIX_DEBIAN_MIRROR=URL "
                   "(e.g. http://deb.debian.org/debian)")


def test_given_beats_environment_beats_sources(tmp_path, monkeypatch):
    where = sources(tmp_path, {"ubuntu.sources": UBUNTU})
    monkeypatch.setenv(debian.ENV_MIRROR, "http://mirror.example/debian/")
    assert debian.mirror(**where) == "http://mirror.example/debian"
    assert debian.mirror("http://other.example/debian", **where) == "http://other.example/debian"
    with pytest.raises(UserError, match=r"^Debian mirror 'deb.debian.org' \(from --mirror\) is not an http"):
        debian.mirror("deb.debian.org", **where)


def test_the_source_line_is_always_signed_by_debians_keyring(monkeypatch):
    monkeypatch.setenv(debian.ENV_MIRROR, "http://mirror.example/debian")
    assert debian.source_line("bookworm") == ("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                                              "http://mirror.example/debian bookworm main")


def test_a_build_with_no_mirror_known_stops_with_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """The whole image build on an 'Ubuntu host' (fake sources): the error comes before mmdebstrap runs."""
    where = sources(tmp_path, {"ubuntu.sources": UBUNTU})
    real = debian.mirror
    monkeypatch.setattr(debian, "mirror", lambda given=None: real(given, **where))
    monkeypatch.setenv("ARCHMATRIX_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="^no Debian mirror known: .* give one with --mirror URL or "
                                        "ARCHMATRIX_DEBIAN_MIRROR=URL"):
        images.build(platforms.host(), platforms.distro("debian12"), progress=lambda m: None)
    assert [p.name for p in images.images_dir().iterdir()] == [f"{images.key(platforms.host(), platforms.distro('debian12'))}.lock"]


def test_bad_mirror_option_is_one_line_from_pytest_and_the_cli(tmp_path, run_cli):
    out = subprocess.run([sys.executable, "-m", "pytest", "--mirror", "ftp://x", "--collect-only", "-q",
                          str(ROOT / "suites")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 4 and "Debian mirror 'ftp://x' (from --mirror) is not an http(s):// or file:// URL" \
        in out.stderr, out.stderr
    bad = run_cli("images", "build", "--arch", "amd64", "--mirror", "ftp://x")
    assert bad.returncode == 2 and bad.stderr == ("archmatrix: error: Debian mirror 'ftp://x' (from --mirror) is "
                                                  "not an http(s):// or file:// URL\n")
