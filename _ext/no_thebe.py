"""Keep sphinx-thebe's scripts out of the book.

Jupyter Book 1 always loads the sphinx-thebe extension. Even with `launch_buttons.thebe: false`
(the course launches notebooks on Binder and Colab, not live in the page) it writes into every
page an inline script naming a CDN (`const THEBE_JS_URL = "https://unpkg.com/thebe@..."`), a
thebe configuration block and a `sphinx-thebe.js` tag. Nothing is fetched unless a thebe button
is clicked, and there is none, but the site should not even point at a CDN: this extension
unhooks sphinx-thebe's page hooks so none of that is written.

To turn thebe on one day, remove this extension from `sphinx.local_extensions` in _config.yml.
"""

from __future__ import annotations

import sphinx_thebe
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

THEBE_HOOKS = {
    sphinx_thebe.init_thebe_default_config,
    sphinx_thebe.init_thebe_core,
    sphinx_thebe.update_thebe_context,
}


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx_thebe")  # make sure its hooks are registered before we look
    found = set()
    for listeners in app.events.listeners.values():
        for listener in list(listeners):
            if listener.handler in THEBE_HOOKS:
                app.disconnect(listener.id)
                found.add(listener.handler)
    if found != THEBE_HOOKS:  # a sphinx-thebe upgrade changed its hooks: look again
        missing = sorted(h.__name__ for h in THEBE_HOOKS - found)
        raise ExtensionError(f"no_thebe: sphinx-thebe hooks not found: {missing}")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
