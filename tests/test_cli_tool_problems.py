"""Problems in a project's tools are reported against the user's files, and thin tool docs warn."""

from __future__ import annotations

import os

from conftest import Cli, ProjectFactory

from tether.agent.tools import _parse_docstring

POLICY = """
def respond(turn):
    return "Hello!"
"""

DOCUMENTED = '''
from tether import tool


@tool
def lookup(order: str) -> str:
    """Look up an order.

    Args:
        order: The order number.
    """
    return order
'''


def test_a_syntax_error_names_the_project_file_and_line(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=DOCUMENTED + "\n\ndef broken(:\n    pass\n", policy=POLICY)
    line = (project / "tools.py").read_text().splitlines().index("def broken(:") + 1
    for command in (("run", "--user", "u1", "hi"), ("release", "create")):
        result = cli(*command, "--project", project, expect=2)
        assert f"{project / 'tools.py'}, line {line}" in result.output, result.output
        assert "SyntaxError" in result.output
        assert os.environ["TETHER_CODE_CACHE"] not in result.output  # not the code cache's copy
        assert "Traceback" not in result.output


def test_an_error_in_another_project_module_names_that_module(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools="from . import helpers\n" + DOCUMENTED, policy=POLICY)
    (project / "helpers.py").write_text("RATE = 1\nSHARE = RATE / 0\n")
    result = cli("run", "--project", project, "--user", "u1", "hi", expect=2)
    assert f"{project / 'helpers.py'}, line 2" in result.output, result.output
    assert "ZeroDivisionError" in result.output
    assert os.environ["TETHER_CODE_CACHE"] not in result.output


def test_thinly_documented_tools_are_warned_about(cli: Cli, make_project: ProjectFactory) -> None:
    tools = (
        DOCUMENTED
        + '''

@tool
def mystery(code: str) -> str:
    return code


@tool
def half_described(order: str, reason: str) -> str:
    """Do something with an order.

    Args:
        order: The order number.
    """
    return order
'''
    )
    project = make_project(tools=tools, policy=POLICY)
    for command in (("release", "create"), ("run", "--user", "u1", "hi")):
        warned = cli(*command, "--project", project).stderr
        assert "tool mystery has no docstring" in warned
        assert "tool half_described: no description for argument(s) reason" in warned
        assert "lookup" not in warned  # fully documented: nothing to say


def test_documented_tools_give_no_warning(cli: Cli, make_project: ProjectFactory) -> None:
    project = make_project(tools=DOCUMENTED, policy=POLICY)
    assert "warning" not in cli("release", "create", "--project", project).stderr


def test_other_docstring_styles_describe_arguments_too() -> None:
    numpy_style = """Send a parcel.

    Parameters
    ----------
    name : str
        Who receives it.
    """
    rest_style = """Send a parcel.

    :param name: Who receives it.
    """
    for doc in (numpy_style, rest_style):
        assert _parse_docstring(doc) == ("Send a parcel.", {"name": "Who receives it."})
