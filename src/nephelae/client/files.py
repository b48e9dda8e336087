"""`Client.files`: your workspace on the platform (`/api/v1/files/...`), paths confined to it."""

from __future__ import annotations

from nephelae.client.transport import Transport


class Files:
    """Put, get and list the files of your workspace; reached as `Client.files`."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
