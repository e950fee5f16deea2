"""Posting an alert to a chat webhook.

One POST of JSON with a `text` field: the message the incoming webhooks of Slack, Mattermost and
Rocket.Chat all accept. The URL of such a webhook is a secret (whoever has it can post to the channel),
so it is read from the environment only, and nothing this module says repeats it: logs name the scheme
and host alone, and errors are described without the exception's text, which may quote the URL.
"""

import json
import threading
import urllib.error
import urllib.parse
import urllib.request

# The longest ALERT_WEBHOOK_TIMEOUT_SECONDS may be: a tick must end well within Dagster's 60 s limit.
MAX_TIMEOUT_SECONDS = 15


def webhook_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook's address, or None when it can be. Says nothing of the URL itself."""
    if any(char.isspace() or not char.isprintable() for char in url):
        return "it holds spaces or control characters"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an http:// or https:// URL"
    if parts.username is not None or parts.password is not None:
        return "it holds a user name or password, which webhooks do not use"
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 0 to 65535"
    if port is not None and f":{port}" not in parts.netloc:  # "+80" and the like parse, oddly
        return "its port is not a number from 0 to 65535"
    return None


def webhook_name(url: str) -> str:
    """The webhook as logs may show it: scheme and host, without the path or any credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without its body: it is an error to report instead."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, timeout_seconds: float) -> str | None:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "dagster-and-etl-alerts"},
    )
    try:
        with _opener.open(request, timeout=timeout_seconds) as response:
            response.read(4096)
        return None
    except urllib.error.HTTPError as error:
        redirect = " (a redirect: set the URL it points to)" if 300 <= error.code < 400 else ""
        return f"answered HTTP {error.code}{redirect}"
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            return f"did not answer within {timeout_seconds:g} s"
        detail = reason.strerror if isinstance(reason, OSError) and reason.strerror else type(reason).__name__
        return f"could not be reached ({detail})"
    except TimeoutError:
        return f"did not answer within {timeout_seconds:g} s"
    except Exception as error:  # a malformed answer, a broken connection: never the tick's failure
        return f"could not be reached ({type(error).__name__})"


def post_alert(url: str, text: str, timeout_seconds: float) -> str | None:
    """Posts one message. None once the webhook has answered with a 2xx status; else what went wrong, in
    a few words. Gives up after `timeout_seconds` in all, however slowly the webhook answers (or the name
    resolves); a POST given up on may still arrive, so an alert can, rarely, be sent twice."""
    body = json.dumps({"text": text}).encode("utf-8")
    outcome: list[str | None] = []
    worker = threading.Thread(target=lambda: outcome.append(_post(url, body, timeout_seconds)), daemon=True)
    worker.start()
    worker.join(timeout_seconds)
    if not outcome:
        return f"did not answer within {timeout_seconds:g} s"
    return outcome[0]
