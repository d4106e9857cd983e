"""Links people follow from outside the console: a plan's console page at Madre's public
address (MADRE_PUBLIC_URL), for notifications, the plan detail and `madre show`."""

from __future__ import annotations

from urllib.parse import quote


def console_url(public_url: str | None, plan_id: str) -> str | None:
    """`<public_url>/console/plans/<plan_id>`, or None when Madre has no public address."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/console/plans/{quote(plan_id, safe='')}"
