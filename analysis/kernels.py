"""The kernel manager ``resdit report`` runs notebooks with: IPC sockets instead of TCP on localhost, so no kernel
warns that it "is running over TCP without encryption" into the report's output, and no port is opened. The socket
files live in Jupyter's runtime folder (never in the notebooks' working folder) and go with the kernel."""

import os
import uuid

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir


class IPCKernelManager(AsyncKernelManager):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"
        runtime = jupyter_runtime_dir()
        os.makedirs(runtime, exist_ok=True)
        self.ip = os.path.join(runtime, f"resdit-kernel-{uuid.uuid4().hex[:12]}-ipc")
