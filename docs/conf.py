"""Sphinx configuration of the sse_sync docs (``python3 dev.py docs`` builds and serves them).

Why Sphinx, with the Pallets theme: the docstrings are Pallets-style reST, so autodoc renders the
API reference from them as Flask's and Werkzeug's are rendered, in the look Flask users know;
myst-parser keeps the pages in Markdown, so they read on GitHub too. Every build runs with
warnings as errors and nitpicky references (``-W -n``): a broken link, a docstring that does not
parse or a name that does not resolve fails it (``tests/test_docs.py``).

Nothing here uses the network. Intersphinx would fetch other projects' inventories at build time,
so instead :func:`_external_reference` turns references to the few outside names our signatures
use (Flask, Werkzeug, pydantic, httpx, the standard library) into plain links; a new one fails the
build until it is added to ``EXTERNAL``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from pallets_sphinx_themes import ProjectLink, get_version

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the examples, for literalinclude's :pyobject:

project = "sse_sync"
copyright = "sse_sync contributors"
release, version = get_version("sse_sync")

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "pallets_sphinx_themes",
]
exclude_patterns = ["_build", "nginx.conf"]
nitpicky = True

# -- Markdown (MyST) -----------------------------------------------------------------------------

source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence"]
# GitHub-style anchors for "## Headings" down to "####", so links such as
# deployment.md#stopping-producers work on the site as on GitHub.
myst_heading_anchors = 4

# -- autodoc -------------------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = False
autodoc_default_options = {"members": True}

# Names that appear in signatures but have no page of their own: type variables and private
# helpers (their docstrings describe them where it matters).
nitpick_ignore = [
    ("py:class", name)
    for name in (
        "F",
        "P",
        "~P",
        "T",
        "sse_sync._views.F",
        "Authorize",
        "EventStream",
        "ItemRules",
        "RouteCallable",
        "RunnerKind",
        "Bookmark",  # in Wakeup(...), which only ChannelLog makes
        "sse_sync._stream.EventStream",
        "sse_sync.testing._TestResponse",
        "strict=True",  # Annotated[int, Strict()] metadata, rendered as if it were a type
    )
]

PYTHON = "https://docs.python.org/3/library/"
WERKZEUG = "https://werkzeug.palletsprojects.com/en/stable/"
FLASK = "https://flask.palletsprojects.com/en/stable/api/"
PYDANTIC = "https://docs.pydantic.dev/latest/api/"
HTTPX = "https://www.python-httpx.org/"
PROMETHEUS = "https://prometheus.github.io/client_python/"
#: Outside names our signatures use -> where they are documented.
EXTERNAL = {
    "werkzeug.wrappers.response.Response": f"{WERKZEUG}wrappers/#werkzeug.wrappers.Response",
    "werkzeug.wrappers.Response": f"{WERKZEUG}wrappers/#werkzeug.wrappers.Response",
    "werkzeug.wrappers.request.Request": f"{WERKZEUG}wrappers/#werkzeug.wrappers.Request",
    "werkzeug.datastructures.headers.Headers": (
        f"{WERKZEUG}datastructures/#werkzeug.datastructures.Headers"
    ),
    "Headers": f"{WERKZEUG}datastructures/#werkzeug.datastructures.Headers",
    "werkzeug.exceptions.HTTPException": (
        f"{WERKZEUG}exceptions/#werkzeug.exceptions.HTTPException"
    ),
    "WSGIEnvironment": "https://peps.python.org/pep-3333/#environ-variables",
    "flask.app.Flask": f"{FLASK}#flask.Flask",
    "Flask": f"{FLASK}#flask.Flask",
    "flask.blueprints.Blueprint": f"{FLASK}#flask.Blueprint",
    "BaseModel": f"{PYDANTIC}base_model/#pydantic.BaseModel",
    "pydantic.main.BaseModel": f"{PYDANTIC}base_model/#pydantic.BaseModel",
    "pydantic.types.Strict": f"{PYDANTIC}types/#pydantic.types.Strict",
    "httpx.Client": f"{HTTPX}api/#client",
    "CollectorRegistry": f"{PROMETHEUS}collector/custom/",
    "prometheus_client.registry.CollectorRegistry": f"{PROMETHEUS}collector/custom/",
    "httpx.Timeout": f"{HTTPX}advanced/timeouts/",
    "httpx.Auth": f"{HTTPX}advanced/authentication/",
    "BasePlugin": "https://apispec.readthedocs.io/en/latest/api_core.html#apispec.BasePlugin",
}
#: Standard library modules whose names link to docs.python.org by their own anchors.
STDLIB = ("collections.abc", "socket", "typing", "datetime", "contextlib", "logging")


#: Where sse_sync's names are documented: their public modules, in this order.
PUBLIC_MODULES = ("sse_sync", "sse_sync.brokers")


def _public_reference(app: Any, env: Any, node: Any, contnode: nodes.Node) -> Any:
    """Resolve ``sse_sync._module.Name`` (how annotations name it) to where it is documented."""
    target = node["reftarget"]
    if not target.startswith("sse_sync._"):
        return None
    name = target.rpartition(".")[2]
    domain = env.get_domain("py")
    for module in PUBLIC_MODULES:
        found = domain.objects.get(f"{module}.{name}")
        if found is not None:
            uri = app.builder.get_relative_uri(node["refdoc"], found.docname)
            reference = nodes.reference("", "", internal=True, refuri=f"{uri}#{found.node_id}")
            reference.append(contnode)
            return reference
    return None


def _external_reference(app: Any, env: Any, node: Any, contnode: nodes.Node) -> Any:
    """Resolve a Python reference Sphinx could not find to an outside page, or leave it."""
    if node.get("refdomain") != "py":
        return None
    public = _public_reference(app, env, node, contnode)
    if public is not None:
        return public
    target = node["reftarget"]
    url = EXTERNAL.get(target)
    module = target.rpartition(".")[0]
    if url is None and module in STDLIB:
        url = f"{PYTHON}{module}.html#{target}"
    if url is None:
        return None
    reference = nodes.reference("", "", internal=False, refuri=url, reftitle=target)
    reference.append(contnode)
    return reference


def setup(app: Any) -> None:
    app.connect("missing-reference", _external_reference)


# -- HTML ----------------------------------------------------------------------------------------

html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
html_title = f"sse_sync Documentation ({version})"
html_short_title = "sse_sync"
html_show_sourcelink = False
html_copy_source = False
html_context = {
    "project_links": [
        ProjectLink("Changes", "changes.html"),
        ProjectLink("API reference", "api.html"),
    ]
}
html_sidebars = {
    "index": ["project.html", "localtoc.html", "searchbox.html"],
    "**": ["localtoc.html", "relations.html", "searchbox.html"],
}
# The theme's version banner asks PyPI about newer releases from the reader's browser: this
# site is built and read offline as well, so it asks nothing.
version_banner = False

# Some JSON samples elide parts with "..." (operations.md, openapi.md): Pygments cannot lex
# them strictly and falls back to relaxed highlighting, which is what they need.
suppress_warnings = ["misc.highlighting_failure"]
