"""The dashboard page, rendered for its audience and for the path it is served under.

Every URL in the page is written under the app's `root_path` (the prefix a proxy strips, or where a
Starlette/FastAPI app mounted it), and the script finds the APIs next to its own URL, so the same
page works at `/`, at `/stoic/` or anywhere else.
"""

from __future__ import annotations

import html
import re
from importlib import resources

VIEWS = ("operator", "support")
_OPERATOR_ONLY = re.compile(r"<!--operator-->.*?<!--/operator-->", re.S)


def check_view(view: object) -> str:
    """`view` if it is one of `VIEWS`; ValueError naming `view` otherwise."""
    if view not in VIEWS:
        raise ValueError(f"view: must be one of {', '.join(VIEWS)}, got {view!r}")
    return str(view)


def page_template(title: str, view: str) -> str:
    """The page for `view` with `title` filled in; `{{root}}` is left for `render` to fill."""
    page = resources.files("stoic.web").joinpath("static/index.html").read_text("utf-8")
    if view == "support":
        # The support view has no controls at all: not hidden, absent.
        page = _OPERATOR_ONLY.sub("", page)
    return page.replace("{{title}}", html.escape(title)).replace("{{view}}", view)


def render(template: str, root_path: str) -> str:
    """The page with its URLs under `root_path` (e.g. "/stoic"; "" at the root)."""
    return template.replace("{{root}}", html.escape(root_path.rstrip("/"), quote=True))
