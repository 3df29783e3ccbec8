"""Build hook: the wheel carries templates/ (replies, alerts, report) as mailbot/templates,
and the web console's GOV.UK Frontend and MoJ Frontend (from node_modules, which
scripts/setup installs with npm) as mailbot/web/static/vendor.

templates/ stays at the top of the repository as what admins read and edit; a source
checkout (and an editable install) reads it there. A built wheel has no repository
beside it, so build_py copies the directory into the package.
"""

import importlib.util
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
        # mailbot/web/assets.py names the files; loaded alone (standard library only).
        here = Path(__file__).resolve().parent
        spec = importlib.util.spec_from_file_location("assets", here / "mailbot/web/assets.py")
        assets = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(assets)
        assets.collect(here / "node_modules",
                       Path(self.build_lib) / "mailbot" / "web" / "static" / "vendor")


setup(cmdclass={"build_py": BuildPyWithTemplates})
