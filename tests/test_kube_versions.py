import pytest

from harness.matrix import kube_versions as kv
from harness.common.errors import UserError


def test_relative_selectors_resolve_offline():
    latest = kv.RELEASES[-1]
    assert kv.resolve("latest") is latest
    assert kv.resolve("-1") is kv.RELEASES[-2]
    assert kv.resolve("-2").minor == kv.RELEASES[-3].minor
    assert kv.resolve("v1.32.4").minor == "1.32"
    assert kv.resolve("1.30").minor == "1.30"


def test_every_minor_from_1_27_to_1_37_is_there_in_order_and_1_38_is_not():
    # 1.37.0 is released (2026-08-26); 1.38 has only alphas: an unreleased minor must never be latest
    minors = [r.minor for r in kv.RELEASES]
    assert minors == [f"1.{n}" for n in range(27, 38)]
    assert [r.key for r in kv.RELEASES] == sorted(r.key for r in kv.RELEASES)
    assert kv.resolve("latest").minor == "1.37"


def test_pause_versions_only_move_forward():
    def v(s):
        return tuple(int(x) for x in s.split("."))
    pauses = [v(r.images_at(99).pause) for r in kv.RELEASES]
    assert pauses == sorted(pauses)
    gos = [v(r.go) for r in kv.RELEASES]
    assert gos == sorted(gos)


@pytest.mark.parametrize("bad", ["1.12", "latest-ish", "-40", "v2", ""])
def test_unknown_selectors_are_user_errors(bad):
    with pytest.raises(UserError, match="kubernetes"):
        kv.resolve(bad)


def test_image_list_matches_kubeadm_naming():
    imgs = kv.resolve("1.32").images()
    assert imgs["pause"] == "registry.k8s.io/pause:3.10"
    assert imgs["coredns"].startswith("registry.k8s.io/coredns/coredns:v")
    assert imgs["kube-apiserver"] == "registry.k8s.io/kube-apiserver:v1.32.0"
    assert len(imgs) == 7


def test_go_facts_of_each_line_are_consistent():
    """Every recorded move is to a newer Go minor than the line's .0 and no newer than the newest a
    release is built with; a final patch release is of the line, built with a Go the line had."""
    key = kv.go_version_key
    assert set(kv.GO) <= {r.minor for r in kv.RELEASES}
    newest = kv.newest_go_minor()
    for r in kv.RELEASES:
        line = kv.go_line(r)
        assert line.source or r.minor not in kv.GO, r.minor
        for minor, pr in line.moved:
            assert key(kv.go_minor(r.go)) < key(minor) <= key(newest) and pr.startswith("#"), (r.minor, minor)
        if line.final:
            patch, go = line.final
            assert patch.startswith(f"v{r.minor}.") and key(go) >= key(r.go), r.minor
            assert kv.go_minor(go) in {kv.go_minor(r.go), *dict(line.moved)}, r.minor


@pytest.mark.parametrize("text,want", [("go1.24.4", (1, 24, 4)), ("1.26", (1, 26, 0)), ("go1.26rc1", (1, 26, -1)),
                                       ("go1.22.5 X:boringcrypto", (1, 22, 5)), ("devel +abc", None), ("", None)])
def test_go_version_key(text, want):
    assert kv.go_version_key(text) == want


# what each release's own kubeadm lists (`kubeadm config images list --kubernetes-version`), as
# recorded per release by kubernetes/minikube's generator: (version, pause, etcd, coredns)
@pytest.mark.parametrize("version,pause,etcd,coredns", [
    ("v1.36.0", "3.10.2", "3.6.8-0", "v1.14.2"),   # not 3.10.1 / v1.13.1 as the table had it
    ("v1.36.3", "3.10.2", "3.6.8-0", "v1.14.2"),
    ("v1.37.0", "3.10.2", "3.7.0-0", "v1.14.6"),
    ("v1.31.0", "3.10", "3.5.15-0", "v1.11.1"),    # coredns moved to v1.11.3 in v1.31.1
    ("v1.31.1", "3.10", "3.5.15-0", "v1.11.3"),
    ("v1.31.14", "3.10", "3.5.24-0", "v1.11.3"),
    ("v1.33.5", "3.10", "3.5.21-0", "v1.12.0"),
    ("v1.33.6", "3.10", "3.5.24-0", "v1.12.0"),    # late patches moved etcd
    ("v1.34.1", "3.10.1", "3.6.4-0", "v1.12.1"),
    ("v1.34.2", "3.10.1", "3.6.5-0", "v1.12.1"),
    ("v1.30.5", "3.9", "3.5.15-0", "v1.11.3"),
])
def test_images_are_exact_per_patch(version, pause, etcd, coredns):
    r = kv.resolve(version)
    assert r.images_at(version) == kv.Images(pause, etcd, coredns)
    refs = r.images(patch=version)
    assert refs["etcd"] == f"registry.k8s.io/etcd:{etcd}" and refs["kube-proxy"].endswith(f":{version}")


def test_containerd_rows_accept_only_listed_lines_at_their_lowest_patch():
    row = kv.resolve("1.36").containerd
    assert row.accepts("2.3.0") and row.accepts("2.2.7")
    assert not row.accepts("2.1.9")  # Debian forky/sid's containerd: not in 1.36's row
    assert not row.accepts("1.7.34")
    r133 = kv.resolve("1.33").containerd
    assert r133.accepts("1.7.24") and not r133.accepts("1.7.23") and not r133.accepts("1.6.20")
    assert kv.resolve("1.37").containerd.lines == ()  # no row yet: said so, not guessed
