"""Every `--help` names only commands and flags that exist (issue 34: `asm-fer crossfit` was named but is
`asm-fer export --crossfit`)."""

from __future__ import annotations

import re

import pytest

from asm_fer.cli import main


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _flags(text: str) -> set[str]:
    """The option strings a --help page defines: those in its usage and at the start of its option lines."""
    usage = text.split("\n\n")[0]
    starts = [re.split(r"\s{2,}", line.strip())[0] for line in text.splitlines() if line.startswith("  -")]
    return set(re.findall(r"(?<![\w-])--[a-z][\w-]*", " ".join([usage, *starts])))


def test_every_command_and_flag_named_in_a_help_page_exists(capsys: pytest.CaptureFixture[str]) -> None:
    top = _help(capsys)
    match = re.search(r"\{([\w,-]+)\}", top)
    assert match, top
    commands = match.group(1).split(",")
    assert {"train", "export", "audit"} <= set(commands)
    pages = {command: _help(capsys, command) for command in commands}
    flags = {command: _flags(page) for command, page in pages.items()}
    assert "--crossfit" in flags["export"] and "--out" in flags["train"]  # an alias counts
    for command, page in {"": top, **pages}.items():
        prose = " ".join(page.split())  # argparse wraps the help text
        for named, tail in re.findall(r"asm-fer (\w[\w-]*)([^`);,]*)", prose):
            assert named in commands, f"`asm-fer {command} --help` names `asm-fer {named}`, not a command"
            for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", tail):
                assert flag in flags[named], f"`asm-fer {command} --help` names `asm-fer {named} {flag}`, not a flag of it"
