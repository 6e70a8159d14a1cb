"""The web tests' loopback page server and counting listener (shared with tests/security and tests/reliability)."""

from tests.support.web_pages import listener, page_server

__all__ = ["listener", "page_server"]
