"""GOV.UK Frontend and MoJ Frontend, from the repository's node_modules (npm, installed
by scripts/setup), gathered into one folder the console serves at /assets: the
stylesheets' own URLs (/assets/fonts, /assets/images) then resolve, and no page reaches
a CDN. setup.py calls `collect` to put them in the wheel (mailbot/web/static/vendor);
a source checkout gathers them into the same place. Standard library only, so that
setup.py can load this file before mailbot is installed."""

from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE_VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
REPO_NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
# (source under node_modules, target under the vendor folder)
FILES = (
    ("govuk-frontend/dist/govuk/govuk-frontend.min.css", "govuk-frontend.min.css"),
    ("govuk-frontend/dist/govuk/govuk-frontend.min.js", "govuk-frontend.min.js"),
    ("govuk-frontend/dist/govuk/assets/fonts", "fonts"),
    ("govuk-frontend/dist/govuk/assets/images", "images"),
    ("@ministryofjustice/frontend/moj/moj-frontend.min.css", "moj-frontend.min.css"),
    ("@ministryofjustice/frontend/moj/moj-frontend.min.js", "moj-frontend.min.js"),
    ("@ministryofjustice/frontend/moj/assets/images", "images"),
)


def collect(node_modules: Path, target: Path) -> None:
    """Copy the built CSS, JS, fonts and images into TARGET; FileNotFoundError naming the
    missing file when npm has not installed them (run scripts/setup)."""
    target.mkdir(parents=True, exist_ok=True)
    for source, name in FILES:
        path = node_modules / source
        if path.is_dir():
            shutil.copytree(path, target / name, dirs_exist_ok=True)
        elif path.is_file():
            shutil.copy2(path, target / name)
        else:
            raise FileNotFoundError(f"{path} is missing: run scripts/setup (npm ci)")


def vendor_dir() -> Path | None:
    """The folder served at /assets: the package's, gathered first from a source
    checkout's node_modules when it is not there yet."""
    if not (PACKAGE_VENDOR / "govuk-frontend.min.css").is_file() and REPO_NODE_MODULES.is_dir():
        collect(REPO_NODE_MODULES, PACKAGE_VENDOR)
    return PACKAGE_VENDOR if PACKAGE_VENDOR.is_dir() else None


if __name__ == "__main__":
    collect(REPO_NODE_MODULES, PACKAGE_VENDOR)
