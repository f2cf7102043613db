"""The OpenAPI page at /docs, offline: Swagger UI's files come from the installed ``swagger-ui-bundle``
package, not from a CDN (FastAPI's default), which left /docs blank on a machine without network."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from cnnkit.log import LOGGER

ASSETS = "/docs-assets"


def add_docs(app: FastAPI) -> None:
    """/docs from local files where ``swagger-ui-bundle`` is installed (``pip install cnnkit[serve]``);
    else FastAPI's own page (Swagger UI from a CDN: blank offline)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        LOGGER.warning("warning: /docs loads Swagger UI from a CDN (blank offline); pip install 'cnnkit[serve]' "
                       "(swagger-ui-bundle) serves it from disk")
        app.add_api_route("/docs", lambda: get_swagger_ui_html(openapi_url="/openapi.json", title="cnnkit API"),
                          include_in_schema=False, response_class=HTMLResponse)
        return
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="cnnkit API",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")

    app.add_api_route("/docs", docs, include_in_schema=False, response_class=HTMLResponse)
