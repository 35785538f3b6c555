"""What a webhook receives: the body of a notification in the webhook's format, and the headers
(``X-Broker-Event``, ``X-Broker-Delivery``, ``X-Broker-Signature``).

- ``slack``: an incoming webhook's message — ``text`` (the fallback of notifications and
  screen readers) and ``blocks``: a header, the text, the facts as a section's fields (at most
  10, as Slack allows), an actions block with a button opening the link.
- ``teams``: a message with one Adaptive Card 1.4 attachment (Workflows' "post to a channel when
  a webhook request is received", and the older incoming webhooks): TextBlocks, a FactSet, an
  Action.OpenUrl.
- ``json``: the notification itself: ``event``, ``title``, ``text``, ``facts`` (label/value
  objects), ``link``, ``data``, ``delivery``.

Signature: ``X-Broker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<raw body>")>``,
the Stripe-style scheme: the receiver recomputes it over the raw bytes it read, compares in
constant time and refuses an old ``t`` (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from broker.notify import Notification
from broker.notify.config import Format

SIGNATURE = "X-Broker-Signature"
EVENT = "X-Broker-Event"
DELIVERY = "X-Broker-Delivery"


def note_dict(note: Notification) -> dict[str, Any]:
    """The notification as the outbox keeps it (JSON)."""
    return {"event": note.event, "title": note.title, "text": note.text,
            "facts": [[label, value] for label, value in note.facts], "link": note.link, "data": note.data}


def note_of(payload: dict[str, Any]) -> Notification:
    return Notification(event=str(payload["event"]), title=str(payload["title"]), text=str(payload.get("text") or ""),
                        facts=tuple((str(a), str(b)) for a, b in payload.get("facts") or ()),
                        link=payload.get("link"), data=dict(payload.get("data") or {}))


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(note: Notification) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": note.title[:150]}}]
    if note.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(note.text)[:3000]}})
    if note.facts:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{_mrkdwn(label)}*\n{_mrkdwn(value)}"[:2000]} for label, value in note.facts[:10]
        ]})
    if note.link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in the broker"}, "url": note.link[:3000],
             "action_id": "open"}]})
    fallback = _mrkdwn(note.title + (f": {note.text}" if note.text else "")) + (f" <{note.link}>" if note.link else "")
    return {"text": fallback, "blocks": blocks}


def teams(note: Notification) -> dict[str, Any]:
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": note.title, "weight": "Bolder", "size": "Medium",
                                   "wrap": True}]
    if note.text:
        body.append({"type": "TextBlock", "text": note.text, "wrap": True})
    if note.facts:
        body.append({"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in note.facts]})
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body}
    if note.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in the broker", "url": note.link}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def plain(note: Notification, delivery: str) -> dict[str, Any]:
    return {"event": note.event, "title": note.title, "text": note.text,
            "facts": [{"label": label, "value": value} for label, value in note.facts], "link": note.link,
            "data": note.data, "delivery": delivery}


def body(fmt: Format, note: Notification, delivery: str) -> bytes:
    doc = slack(note) if fmt == "slack" else teams(note) if fmt == "teams" else plain(note, delivery)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def signature(key: bytes, timestamp: int, raw: bytes) -> str:
    mac = hmac.new(key, str(timestamp).encode("ascii") + b"." + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def headers(note: Notification, delivery: str, raw: bytes, *, key: bytes | None, timestamp: int) -> dict[str, str]:
    out = {"Content-Type": "application/json", EVENT: note.event, DELIVERY: delivery}
    if key is not None:
        out[SIGNATURE] = signature(key, timestamp, raw)
    return out
