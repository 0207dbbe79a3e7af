"""All git goes through `GitRepo.git`, one method over GitPython's command runner.

The bot never touches the user's working tree or index to make experiments: commits are
built with plumbing (a temporary index, write-tree, commit-tree) and branches move with
compare-and-swap `update-ref`, so a run can be interrupted at any point without leaving a
half-checked-out tree behind.
"""

import io
import os
import tarfile
import tempfile
from pathlib import Path

from bot.errors import RepoError

BOT_IDENTITY = {
    "GIT_AUTHOR_NAME": "autoresearch-bot",
    "GIT_AUTHOR_EMAIL": "autoresearch-bot@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "autoresearch-bot",
    "GIT_COMMITTER_EMAIL": "autoresearch-bot@users.noreply.github.com",
}


class GitRepo:
    def __init__(self, path):
        import git  # GitPython; imported here so pure modules never pull it in

        self._git_module = git
        try:
            self.repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise RepoError(
                f"{Path(path).resolve()} is not inside a git repository: run the bot from your "
                "repository, or create one with `git init && git add -A && git commit -m start`"
            ) from None
        if self.repo.bare:
            raise RepoError(f"{path} is a bare repository: run the bot in a clone with a working tree")
        self.root = Path(self.repo.working_tree_dir)

    def git(self, *args, env=None, istream=None, binary=False):
        """Run one git command; raise RepoError naming the command on failure."""
        full_env = dict(BOT_IDENTITY, **(env or {}))
        try:
            return self.repo.git.execute(
                ["git", *args],
                env=full_env,
                istream=istream,
                stdout_as_string=not binary,
                strip_newline_in_stdout=not binary,
            )
        except self._git_module.GitCommandError as exc:
            detail = (exc.stderr or "").strip() or str(exc)
            raise RepoError(f"`git {' '.join(args)}` failed: {detail}") from None

    # ---- reading --------------------------------------------------------------------------

    def has_commits(self):
        try:
            self.git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
            return True
        except RepoError:
            return False

    def resolve(self, ref):
        """Full sha of a commit-ish, or None when it does not exist."""
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except RepoError:
            return None

    def branch_sha(self, branch):
        return self.resolve(f"refs/heads/{branch}")

    def current_branch(self):
        try:
            return self.git("symbolic-ref", "--quiet", "--short", "HEAD")
        except RepoError:
            return None  # detached HEAD

    def branches(self, prefix):
        out = self.git("for-each-ref", "--format=%(refname:short)", f"refs/heads/{prefix}")
        return [line for line in out.splitlines() if line]

    def read_file(self, commit, path):
        """A file's text at a commit, or None when the commit does not have it."""
        try:
            return self.git("show", f"{commit}:{path}", binary=True).decode("utf-8")
        except RepoError:
            return None

    def list_files(self, commit):
        return self.git("ls-tree", "-r", "--name-only", commit).splitlines()

    def dirty_paths(self):
        """Tracked files with uncommitted changes (untracked files do not matter)."""
        out = self.git("status", "--porcelain", "--untracked-files=no")
        return [line[3:] for line in out.splitlines() if line.strip()]

    def is_ancestor(self, ancestor, descendant):
        try:
            self.git("merge-base", "--is-ancestor", ancestor, descendant)
            return True
        except RepoError:
            return False

    def diff(self, old, new, stat=False):
        args = ["diff", "--stat"] if stat else ["diff"]
        return self.git(*args, old, new)

    # ---- writing --------------------------------------------------------------------------

    def commit_files(self, parent, files, message):
        """A new commit: `parent`'s tree with `files` ({path: text}) replaced. Returns its sha."""
        with tempfile.TemporaryDirectory(prefix="autoresearch-index-") as scratch:
            index_env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
            self.git("read-tree", parent, env=index_env)
            for path, text in sorted(files.items()):
                blob_file = Path(scratch) / "blob"
                blob_file.write_bytes(text.encode("utf-8"))
                blob = self.git("hash-object", "-w", str(blob_file))
                mode = self._mode(parent, path)
                self.git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=index_env)
            tree = self.git("write-tree", env=index_env)
        return self.git("commit-tree", tree, "-p", parent, "-m", message)

    def _mode(self, commit, path):
        out = self.git("ls-tree", commit, "--", path)
        return out.split()[0] if out else "100644"

    def create_branch(self, branch, sha):
        """Create `branch` at `sha`; fails if it already exists (never clobbers)."""
        self.git("update-ref", f"refs/heads/{branch}", sha, "0" * 40)

    def move_branch(self, branch, new_sha, expected_sha):
        """Compare-and-swap: move `branch` to `new_sha` only if it still points at `expected_sha`.

        When that branch is checked out in the working tree, fast-forward the tree with it
        (git refuses to lose local changes), so the user's checkout never silently drifts.
        """
        if self.current_branch() == branch:
            head = self.resolve("HEAD")
            if head != expected_sha:
                raise RepoError(f"{branch} moved to {head[:7]} while the bot ran; rerun `bot run` to resume")
            self.git("merge", "--ff-only", "--quiet", new_sha)
            return
        self.git("update-ref", f"refs/heads/{branch}", new_sha, expected_sha)

    def export_tree(self, commit, destination):
        """Write the files of `commit` into `destination` (like `git archive | tar -x`)."""
        data = self.git("archive", "--format=tar", commit, binary=True)
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(destination, filter="data")
        return destination
