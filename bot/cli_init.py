"""`bot init`: write an autoresearch.yaml for the repository's layout (bot/init.py decides)."""

from pathlib import Path

import click

from bot.errors import BotError

_READ = ("train.py", "prepare.py", "pyproject.toml")


@click.command()
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False), help="The repository.")
@click.option("--force", is_flag=True, help="Overwrite an existing autoresearch.yaml.")
@click.option("--print", "print_only", is_flag=True, help="Print the settings instead of writing them.")
def init(repo, force, print_only):
    """Recognise the repository's layout and write a commented autoresearch.yaml for it.

    Knows this project's layout, an unmodified karpathy/autoresearch fork (trust mode, its own
    budget, its data cache, its packages) and a benchmark repository (a template to fill in).
    Prints what to do before `bot run`.

    \b
    Examples:
      bot init                 # in a clone of your autoresearch fork
      bot init --print         # show the settings without writing them
      bot init --force         # replace an existing autoresearch.yaml
    """
    from bot.init import detect

    root = Path(repo)
    if not root.is_dir():
        raise click.ClickException(f"{repo} is not a directory")
    files = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in root.iterdir()
             if p.is_file() and (p.name in _READ or p.suffix == ".py")}
    files.update({name: "" for name in ("uv.lock",) if (root / name).is_file()})
    layout = detect(files)
    if print_only:
        click.echo(layout.settings, nl=False)
        return
    target = root / "autoresearch.yaml"
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists: pass --force to replace it, or --print to compare")
    try:
        target.write_text(layout.settings, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(str(BotError(f"cannot write {target}: {exc}"))) from None
    click.echo(f"Recognised: {layout.kind}. Wrote {target}.")
    click.echo("Next:")
    for number, step in enumerate(("git add autoresearch.yaml && git commit -m 'autoresearch settings'",
                                   *layout.steps), 1):
        click.echo(f"  {number}. {step}")
