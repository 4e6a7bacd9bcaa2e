"""utils/files.copy_tree_linking_duplicates: an exact copy, with equal files stored once."""
import os

from flashtalker_jax.utils.files import copy_tree_linking_duplicates


def test_equal_files_share_one_copy_and_others_stay_apart(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.pkl").write_bytes(b"model" * 1000)
    (src / "b.pkl").write_bytes(b"model" * 1000)
    (src / "c.npz").write_bytes(b"texture")
    (src / "sub" / "d.pkl").write_bytes(b"model" * 1000)

    copy_tree_linking_duplicates(src, tmp_path / "dst")

    dst = tmp_path / "dst"
    for rel in ("a.pkl", "b.pkl", "c.npz", "sub/d.pkl"):
        assert (dst / rel).read_bytes() == (src / rel).read_bytes()
    inode = os.stat(dst / "a.pkl").st_ino
    assert os.stat(dst / "b.pkl").st_ino == inode
    assert os.stat(dst / "sub" / "d.pkl").st_ino == inode
    assert os.stat(dst / "c.npz").st_ino != inode
    assert os.stat(src / "a.pkl").st_ino != inode   # the copy is not linked to the source
