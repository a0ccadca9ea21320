"""The house's own rules, checked on its modules: one exception base for the project's
errors, and nothing imports upwards (handlers -> bot -> storage)."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import bot
import handlers
import storage
from storage.errors import LinksnapError

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (storage, bot, handlers)  # lowest first


def modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name != "bot.__main__":
                names.append(info.name)
    return names


def test_every_error_of_the_project_shares_one_base() -> None:
    strays = []
    for name in modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            own = cls.__module__ == name and issubclass(cls, BaseException)
            if own and not issubclass(cls, LinksnapError):
                strays.append(f"{name}.{cls.__name__}")
    assert strays == []


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_nothing_imports_upwards() -> None:
    above = {"storage": {"bot", "handlers"}, "bot": {"handlers"}}
    wrong = []
    for low, banned in above.items():
        for path in sorted((ROOT / low).rglob("*.py")):
            if path.name == "__main__.py" or path.name == "app.py":
                continue  # the wiring registers the handlers
            hits = imported(path) & banned
            if hits:
                wrong.append(f"{path.relative_to(ROOT)} imports {sorted(hits)}")
    assert wrong == []


def test_importing_the_bot_changes_no_environment_variable() -> None:
    """`import bot` (and its wiring) must not change the process's environment: a
    library user or a test importing it gets what it set, nothing more."""
    code = (
        "import os; before = dict(os.environ); "
        "import bot, bot.app, handlers, storage.repository; "
        "print(sorted(set(os.environ.items()) ^ set(before.items())))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PTB_TIMEDELTA"}  # what bot once set
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert done.stdout.strip() == "[]"


def test_every_capture_failure_has_a_sentence_in_both_languages() -> None:
    from bot.browser.errors import Failure
    from bot.i18n import en, zh

    for texts in (en.TEXTS, zh.TEXTS):
        assert set(texts.capture_reasons) == set(Failure)
