"""Build hook: the wheel carries templates/ (replies, alerts, report) as mailbot/templates.

templates/ stays at the top of the repository as what admins read and edit; a source
checkout (and an editable install) reads it there. A built wheel has no repository
beside it, so build_py copies the directory into the package.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithTemplates(build_py):
    def run(self) -> None:
        super().run()
        source = Path(__file__).resolve().parent / "templates"
        target = Path(self.build_lib) / "mailbot" / "templates"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)


setup(cmdclass={"build_py": BuildPyWithTemplates})
