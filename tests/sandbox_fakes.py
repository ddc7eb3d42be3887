"""Build-stage plugins that reach outside their unit directory: each attack is read from :data:`ATTACK_FILE`
(``write:PATH``, ``read:PATH`` or ``connect:PORT``; a file, not the environment: unsandboxed build processes
are forked from a server started before the test set anything) and lets its error propagate, so under the
sandbox the job fails with it, one line."""

import socket
from pathlib import Path

import genbench
from genbench import ModelSpec

from fakes import TinyModel


#: outside /tmp (private in the sandbox), so both sandboxed and unsandboxed build processes can read it
ATTACK_FILE = Path("/var/tmp/genbench-test-attack.txt")


class AttackingModel(TinyModel):
    def train(self, data, config, progress):
        kind, _, target = ATTACK_FILE.read_text().partition(":")
        if kind == "write":
            Path(target).write_text("planted by a plugin")
        elif kind == "read":
            self.stolen = Path(target).read_bytes()
        elif kind == "hang":  # a process of its own session, then hang: the timeout must take both
            import subprocess
            import time

            subprocess.Popen(["sleep", target], start_new_session=True)
            time.sleep(3600)
        elif kind == "connect":
            with socket.create_connection(("127.0.0.1", int(target)), timeout=5) as s:
                s.sendall(b"exfiltrated")
        return super().train(data, config, progress)


class SandboxPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        register(ModelSpec("tiny-attacker", "test", ("image",), "sandbox_fakes:AttackingModel", "reaches out"))
        register(ModelSpec("tiny-bystander", "test", ("image",), "fakes:TinyModel", "an honest neighbour"))
