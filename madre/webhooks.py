"""Standard Webhooks, both ways, through the `standardwebhooks` library: verifying what a
source posts to /madre/webhook/{source}, and signing what Madre posts to MADRE_NOTIFY_URL.

A message carries `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">`); the library refuses a timestamp more than five
minutes away from now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook

from madre.errors import BadSignature

ID_HEADER = "webhook-id"
MAX_ID_CHARS = 128


def check_secret(secret: Any) -> str | None:
    """Why `secret` cannot sign or verify messages, or None when it can."""
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        return "must be a Standard Webhooks secret: \"whsec_\" followed by base64"
    try:
        Webhook(secret)
    except Exception:  # noqa: BLE001 - the library raises several kinds for a bad secret
        return "is not valid base64 after \"whsec_\""
    return None


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """The message id of a message signed with `secret`; BadSignature otherwise."""
    wanted = {k: headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")
              if k in headers}
    message_id = wanted.get(ID_HEADER, "")
    if not message_id or len(message_id) > MAX_ID_CHARS:
        raise BadSignature(f"the {ID_HEADER} header is missing or longer than "
                           f"{MAX_ID_CHARS} characters")
    try:
        Webhook(secret).verify(body, wanted, json_parse=False)
    except Exception as exc:  # noqa: BLE001 - a malformed header raises more than one kind
        raise BadSignature("the webhook is not signed with this source's secret, or its "
                           f"timestamp is more than 5 minutes away ({exc or type(exc).__name__})"
                           ) from None
    return message_id


def signed_headers(secret: str, message_id: str, body: str, *, now: dt.datetime
                   ) -> dict[str, str]:
    """The headers that sign `body` as message `message_id`, at `now`."""
    moment = now.astimezone(dt.UTC)  # the library reads the time as UTC whatever its zone
    signature = Webhook(secret).sign(message_id, moment, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
