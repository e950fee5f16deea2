"""AWS errors in words, for the bucket (source_bucket.py) and its queue (notification_queue.py): what a
failed tick or run says went wrong."""

# The error codes of a refusal of the credentials, by S3 and by SQS; a HEAD's answer has no body, so a
# refusal there is the bare status "403".
REFUSED = (
    "AccessDenied",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "403",
)


# The error codes of an object that is not there: a GET's NoSuchKey, a HEAD's bare status.
NOT_FOUND = ("404", "NoSuchKey", "NotFound")


def error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def aws_cause(error: Exception, service: str = "storage") -> str:
    """What went wrong talking to the storage (or another `service`), in words, with its error code."""
    from botocore.exceptions import ClientError, NoCredentialsError

    code = error_code(error)
    if code in ("NoSuchBucket",):
        return "the bucket does not exist (NoSuchBucket)"
    if code in REFUSED:
        return f"access was refused; check the credentials and their permissions ({code})"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials were found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)"
    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message", "")
        return f"the {service} answered {code}: {message}".rstrip(": ")
    return f"the {service} cannot be reached: {error}"


def is_aws_error(error: Exception) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(error, BotoCoreError | ClientError)
