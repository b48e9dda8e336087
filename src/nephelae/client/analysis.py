"""`Client.analysis`: the analysis API (`/api/v1/analysis/...`): small results computed next to the archive."""

from __future__ import annotations

from nephelae.client.transport import Transport


class Analysis:
    """Synchronous analyses of a dataset; reached as `Client.analysis`."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
