"""Object storage: URLs to filesystems, retries for transient errors, a local S3 server."""

from crossnet_dist.storage.reads import fetch_many
from crossnet_dist.storage.retry import (
    RetryPolicy,
    StorageUnavailableError,
    call_with_retries,
    is_transient,
)
from crossnet_dist.storage.server import BACKENDS, S3Server, S3ServerError, find_binary
from crossnet_dist.storage.urls import (
    StorageError,
    close_filesystem,
    display_url,
    is_s3_url,
    join,
    open_url,
    opened,
    s3_options,
)

__all__ = [
    "BACKENDS", "RetryPolicy", "S3Server", "S3ServerError", "StorageError", "StorageUnavailableError",
    "call_with_retries", "close_filesystem", "display_url", "fetch_many", "find_binary", "is_s3_url", "is_transient", "join",
    "open_url", "opened", "s3_options",
]
