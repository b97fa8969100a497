import requests
from harness.rehearsal.server import StandIns
def test_serves_and_redirects(tmp_path):
    (tmp_path / "a").mkdir(); (tmp_path / "a/b.txt").write_text("hi")
    with StandIns(tmp_path, {"/ch/v1.32": "/tag/v1.32.3"}) as s:
        assert requests.get(s.host_url + "/a/b.txt", timeout=5).text == "hi"
        r = requests.get(s.host_url + "/ch/v1.32", timeout=5, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"] == "/tag/v1.32.3"
        assert requests.get(s.host_url + "/nope", timeout=5).status_code == 404
        assert s.requests == ["/a/b.txt", "/ch/v1.32", "/nope"]
    import pytest
    with pytest.raises(requests.ConnectionError):
        requests.get(s.host_url + "/a/b.txt", timeout=2)
