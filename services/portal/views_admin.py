"""The operations dashboard at ``/admin/``: the page and scripts of ``services/ops``
served by the portal, drawing ``/admin/summary``, which the portal fetches from the
processing service's ``/ops/summary`` with the signed-in user's proxy. The service
decides who is an administrator: a plain member is refused the page (403) and the
data alike."""

from __future__ import annotations

from urllib.parse import urlencode

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from gproc.errors import GprocError, InvalidRequest, NotAuthorised, NotFound
from gproc.services.ops import asset, fetch_summary
from gproc.services.portal.app import Ctx

ASSETS = {"dashboard.js", "dashboard.css"}
REFUSED = "The operations dashboard is for grid administrators"


def _summary(ctx: Ctx) -> dict[str, object]:
    url = ctx.portal.clients.endpoints.ops
    ca_dir = ctx.portal.clients.ca_dir
    if not url or ca_dir is None:
        raise NotFound("no dashboard here ([portal] ops_url and a CA directory are needed)")
    query = {k: v for k, v in ctx.request.args.items() if k in ("window_s", "bucket_s")}
    if any(not v.isdigit() or len(v) > 9 for v in query.values()):
        raise InvalidRequest("window_s and bucket_s: whole numbers of seconds")
    assert ctx.session is not None
    full = url + ("?" + urlencode(query) if query else "")
    return fetch_summary(full, ctx.portal.store.proxy(ctx.session), ca_dir)


def admin_page(ctx: Ctx) -> Response:
    if not ctx.request.path.endswith("/"):
        return redirect("/admin/")
    try:
        _summary(ctx)  # the service says whether this user may see it
    except NotAuthorised as err:
        return ctx.render("error.html", 403, message=f"{REFUSED}: {err}", code=err.code)
    body, ctype = asset("index.html")
    page = body.replace(b'data-summary-url="summary"', b'data-summary-url="/admin/summary"')
    return Response(page, content_type=ctype)


def admin_asset(ctx: Ctx) -> Response:
    name = str(ctx.args["name"])
    if name not in ASSETS:
        raise NotFound("no such file")
    body, ctype = asset(name)
    response = Response(body, content_type=ctype)
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


def admin_summary(ctx: Ctx) -> Response:
    try:
        return ctx.json(_summary(ctx))
    except NotAuthorised as err:
        return ctx.json({"error": f"{REFUSED}: {err}", "code": err.code}, 403)
    except GprocError:
        raise


ROUTES = [
    ("/admin", ["GET"], admin_page, True),
    ("/admin/", ["GET"], admin_page, True),
    ("/admin/summary", ["GET"], admin_summary, True),
    ("/admin/<name>", ["GET"], admin_asset, True),
]
