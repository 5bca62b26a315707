"""The project's one exception root and its two families, apart so callers catch exactly what they mean.

- :class:`TransientError`: the same step can succeed later (our own IPFS daemon or chain node is down, a
  network blip). Retried by Celery, waited out by the node daemon, never held against a volunteer.
- :class:`PermanentError`: retrying cannot help (content that is wrong or absent, a refused spec, a
  contract revert). A verdict may rest on it.

No transient class derives from a permanent one, so ``except ContentError`` never swallows an outage and no
handler has to re-raise one first. Pure: no I/O here, so every room can import it.
"""

from __future__ import annotations


class ShardworkError(Exception):
    """Root of every error this project raises on purpose."""


class TransientError(ShardworkError):
    """Worth retrying: a service we depend on is unreachable or slow."""


class PermanentError(ShardworkError):
    """Retrying cannot help: the input, the content or the request is wrong."""


class StoreUnavailable(TransientError):
    """Our content store (an IPFS daemon) could not be reached or timed out: says nothing about the content."""


class ContentError(PermanentError):
    """Content that is missing or unusable: the base of :class:`ContentMissing` and :class:`ContentInvalid`."""


class ContentMissing(ContentError):
    """Content the store does not have (yet): a volunteer may still be uploading it."""


class ContentInvalid(ContentError):
    """Content that is present but wrong: over a limit, not matching its CID, or refused by a parser."""
