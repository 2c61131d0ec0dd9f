"""dedup apply's path keys at a million files: resolved once per folder, the same as os.path.realpath."""
import os

from fsspec.core import url_to_fs


def test_local_locations_and_keys_match_fsspec_and_realpath(tmp_path, monkeypatch):
    from dedup.apply.plan import _real_dir, _realpath, locate

    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "sub" / "a.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.symlink(tmp_path / "real" / "sub" / "a.jpg", tmp_path / "real" / "alias.jpg")
    _real_dir.cache_clear()
    for p in ["link/sub/a.jpg", "link/alias.jpg", "real/sub/../sub/a.jpg", "link/sub", "link", "real/missing/x.jpg", "."]:
        full = str(tmp_path / p)
        assert _realpath(full) == os.path.realpath(full), p
    monkeypatch.chdir(tmp_path)
    for uri in ["link/sub/a.jpg", str(tmp_path / "real"), "~/x", "file://" + str(tmp_path / "real")]:
        loc = locate(uri)
        fs, path = url_to_fs(os.path.expanduser(uri))
        assert loc.local and loc.path == os.path.abspath(path), uri
    assert locate("link/sub/a.jpg").within(locate(str(tmp_path / "real")))
