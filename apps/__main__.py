"""``python -m apps [--host H] [--port N] [--auth user:password] [--share] ...``: the same as ``vision app``."""

from __future__ import annotations


def main() -> None:
    import typer

    from vision.cli import app_command

    cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    cli.command()(app_command)
    cli(prog_name="python -m apps")


if __name__ == "__main__":
    main()
