"""The git wrapper on real throwaway repositories."""

import pytest

from bot.errors import RepoError
from bot.gitops import GitRepo
from conftest import git, make_repo


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "r", {"train.py": "LR = 1\n", "prepare.py": "X = 1\n", "run.sh": "echo hi\n"})


def test_commit_files_builds_on_the_parent_without_touching_the_work_tree(repo):
    (repo / "run.sh").chmod(0o755)
    git(repo, "add", "run.sh")
    git(repo, "commit", "-q", "-m", "exec")
    g = GitRepo(repo)
    head = g.resolve("HEAD")
    sha = g.commit_files(head, {"train.py": "LR = 2\n"}, "LR 1 -> 2\n\nwhy")
    assert git(repo, "rev-parse", f"{sha}^") == head
    assert git(repo, "show", f"{sha}:train.py") == "LR = 2"
    assert git(repo, "show", f"{sha}:prepare.py") == "X = 1"
    assert git(repo, "ls-tree", sha, "run.sh").split()[0] == "100755"  # modes survive
    assert git(repo, "log", "-1", "--format=%an|%s", sha) == "autoresearch-bot|LR 1 -> 2"
    assert (repo / "train.py").read_text() == "LR = 1\n"
    assert git(repo, "status", "--porcelain") == ""
    assert g.resolve("HEAD") == head


def test_branches_are_created_once_and_moved_only_from_the_expected_sha(repo):
    g = GitRepo(repo)
    head = g.resolve("HEAD")
    child = g.commit_files(head, {"train.py": "LR = 3\n"}, "c")
    g.create_branch("autoresearch/t", head)
    with pytest.raises(RepoError, match="update-ref"):
        g.create_branch("autoresearch/t", child)  # never clobbers
    with pytest.raises(RepoError):
        g.move_branch("autoresearch/t", child, child)  # stale expectation: refused
    g.move_branch("autoresearch/t", child, head)
    assert g.branch_sha("autoresearch/t") == child
    assert g.branches("autoresearch/") == ["autoresearch/t"]


def test_moving_the_checked_out_branch_fast_forwards_the_work_tree(repo):
    g = GitRepo(repo)
    head = g.resolve("HEAD")
    child = g.commit_files(head, {"train.py": "LR = 4\n"}, "c")
    g.move_branch("main", child, head)
    assert (repo / "train.py").read_text() == "LR = 4\n"
    assert git(repo, "status", "--porcelain") == ""


def test_export_tree_read_file_and_dirty_paths(repo, tmp_path):
    g = GitRepo(repo)
    out = g.export_tree("HEAD", tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["prepare.py", "run.sh", "train.py"]
    assert g.read_file("HEAD", "train.py") == "LR = 1\n"
    assert g.read_file("HEAD", "missing.py") is None
    assert g.dirty_paths() == []
    (repo / "train.py").write_text("LR = 9\n")
    (repo / "untracked.txt").write_text("x")
    assert g.dirty_paths() == ["train.py"]


def test_not_a_repository_and_empty_repository(tmp_path):
    with pytest.raises(RepoError, match="git init"):
        GitRepo(tmp_path)
    git(tmp_path, "init", "-q")
    g = GitRepo(tmp_path)
    assert g.has_commits() is False
    assert g.resolve("HEAD") is None
