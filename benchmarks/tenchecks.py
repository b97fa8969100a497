"""The ten checks bench_qemu and bench_docker time on one node: the kind of calls a suite makes
(commands and testinfra modules), portable to a container (no service manager needed)."""
import time

CHECKS = (lambda h: h.run("uname -m").rc == 0, lambda h: h.file("/etc/os-release").exists,
          lambda h: h.file("/usr/bin/ssh-keygen").is_file, lambda h: h.system_info.arch is not None,
          lambda h: h.file("/bin/sh").exists, lambda h: h.run("id -u").stdout.strip() == "0",
          lambda h: h.file("/etc/passwd").exists, lambda h: h.run("cat /proc/cpuinfo").rc == 0,
          lambda h: h.sysctl("kernel.ostype") == "Linux", lambda h: h.run("ls /usr/bin").rc == 0)


def run(host) -> float:
    """Seconds for the ten checks on `host` (a testinfra Host); every one must hold."""
    t0 = time.monotonic()
    assert all(check(host) for check in CHECKS)
    return time.monotonic() - t0
