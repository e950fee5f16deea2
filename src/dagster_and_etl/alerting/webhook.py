"""Posting an alert to a chat webhook.

One POST of JSON with a `text` field: the message the incoming webhooks of Slack, Mattermost and
Rocket.Chat all accept. The URL of such a webhook is a secret (whoever has it can post to the channel),
so it is read from the environment only, and logs name its scheme and host alone.
"""

import json
import socket
import urllib.error
import urllib.parse
import urllib.request


def webhook_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's address, or None when it can be."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an http:// or https:// URL"
    return None


def webhook_name(url: str) -> str:
    """The webhook as logs may show it: scheme and host, without the path or any credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def post_alert(url: str, text: str, timeout_seconds: float) -> str | None:
    """Posts one message. None once the webhook has answered with a 2xx status; else what went wrong, in
    a few words. Waits at most `timeout_seconds` for the connection and for each read of the answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "dagster-and-etl-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            response.read(4096)
        return None
    except urllib.error.HTTPError as error:
        return f"answered HTTP {error.code} {error.reason}".rstrip()
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError | socket.timeout):
            return f"did not answer within {timeout_seconds:g} s"
        return f"could not be reached ({error.reason})"
    except TimeoutError:
        return f"did not answer within {timeout_seconds:g} s"
    except (OSError, ValueError) as error:
        return f"could not be reached ({error})"
