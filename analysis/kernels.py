"""The kernel manager ``resdit report`` runs notebooks with: IPC sockets (files in the Jupyter runtime folder, removed
with the kernel) instead of TCP on localhost, so no kernel warns that it "is running over TCP without encryption"
into the report's output, and no port is opened."""

from jupyter_client.manager import AsyncKernelManager


class IPCKernelManager(AsyncKernelManager):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"
