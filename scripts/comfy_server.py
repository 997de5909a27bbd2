"""Dev tool (not shipped): start the project-local ComfyUI server headless on a free loopback
port with the pack linked in, wait until /object_info answers, and stop it afterwards."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMFY = os.path.join(ROOT, ".labenv", "ComfyUI")
PY = os.path.join(ROOT, ".labenv", "venv", "bin", "python")


def comfy_dir_for_tests():
    """The ComfyUI the tests run: SAMPLER_LAB_COMFYUI (e.g. the older core set up beside the default
    one), else .labenv/ComfyUI. Fails with the set-up command when it is missing."""
    path = os.path.abspath(os.environ.get("SAMPLER_LAB_COMFYUI") or COMFY)
    if not os.path.isfile(os.path.join(path, "main.py")):
        raise RuntimeError(f"ComfyUI runtime missing at {path}: run scripts/setup_labenv.sh")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """Context manager: `with ComfyServer(out_dir) as srv: srv.url, srv.log_text()`."""

    def __init__(self, out_dir, user_dir=None, extra_args=(), timeout=180, comfy_dir=None):
        self.comfy_dir = os.path.abspath(comfy_dir) if comfy_dir else COMFY   # another ComfyUI copy
        self.out_dir = os.path.abspath(out_dir)
        self.user_dir = user_dir
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.out_dir, "comfyui.log")
        self.proc = None

    def __enter__(self):
        os.makedirs(self.out_dir, exist_ok=True)
        args = [PY, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                "--disable-auto-launch", "--disable-api-nodes",
                "--output-directory", os.path.join(self.out_dir, "output"),
                "--temp-directory", os.path.join(self.out_dir, "temp")]
        if self.user_dir:
            args += ["--user-directory", self.user_dir]
        env = dict(os.environ)
        site = os.path.join(self.comfy_dir, ".labenv-site")   # an older core's own UI packages (setup_labenv.sh)
        if os.path.isdir(site):
            env["PYTHONPATH"] = os.pathsep.join([site] + [p for p in [env.get("PYTHONPATH")] if p])
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args + self.extra_args, cwd=self.comfy_dir, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        end = time.time() + self.timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited early; log: {self.log_path}\n{self.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/object_info/KSampler", timeout=5):
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise TimeoutError(f"ComfyUI did not answer in {self.timeout} s; log: {self.log_path}")

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


if __name__ == "__main__":
    with ComfyServer(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "out", "server")) as srv:
        print("ComfyUI at", srv.url, "- Ctrl+C to stop", flush=True)
        try:
            srv.proc.wait()
        except KeyboardInterrupt:
            pass
