"""Wire-faithful fakes of the OpenAI and Replicate APIs, for tests (yours too) and demos.

Start one in a test with :class:`FakeServer` (a context manager), or from the shell with
``python -m vision.testing [--port N]``, which prints two shell-sourceable lines::

    OPENAI_BASE_URL=http://127.0.0.1:N/v1
    REPLICATE_BASE_URL=http://127.0.0.1:N
"""

from .server import FakeServer, ReceivedImage, RecordedRequest, Script, directives, wait_until

__all__ = ["FakeServer", "ReceivedImage", "RecordedRequest", "Script", "directives", "wait_until"]
