"""The jail a worker runs in (Linux): ``unshare ... python -I -S jail.py CONFIG`` (standard library only).

``unshare`` (util-linux) has already given this process new mount, PID,
network, IPC and UTS namespaces (and a user namespace when the grader is not
root) and made it PID 1 of the new PID namespace, so that when it ends, or
``unshare`` is killed (``--kill-child``), every process the student's code
started ends with it. Here, still privileged inside those namespaces:

1. a new root filesystem on a small tmpfs, holding read-only bind mounts of
   only what Python and numpy need (``/usr``, the Python installation, the
   site-packages) and ``/sandbox`` (this submission's spliced bnhelpers and
   the worker), a size-limited writable ``/tmp`` (the scratch folder), a
   minimal ``/dev`` and a ``/proc`` of the new PID namespace;
2. ``pivot_root`` into it and detach the old root: the master repository,
   the hidden checks, other submissions and the grades are not mounted
   anywhere the worker can reach; then the new root is remounted read-only;
3. privileges dropped for good: as root, to a uid of its own (so that the
   process limit counts this worker's processes only); in a user namespace,
   every capability; ``no_new_privs`` either way;
4. fork and exec of the worker, which sets its limits on CPU time, address space,
   processes, file size and open files before it imports any student code. The network namespace has no interface but a
   loopback that is down: no network.
"""

import ctypes
import json
import os
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 38, 24, 28
# SECBIT_NOROOT and SECBIT_NO_SETUID_FIXUP, each with its lock: uid 0 gets no capabilities at exec.
SECUREBITS = 0b1111
SYS_PIVOT_ROOT = 155  # x86_64
LAST_CAP = 40

libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source, target, fstype, flags, data=None):
    check(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def bind_read_only(source, target):
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    mount(source, target, None, MS_BIND)
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build_root(root, config):
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), f"{root}/{name}")
    # The scratch /tmp first: a repository or virtual environment that lives under the host's /tmp
    # (a CI clone, say) is then bound read-only inside it, instead of hidden under it.
    owner = config["uid"] if config["uid"] is not None else 0
    os.makedirs(root + "/tmp")
    mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={config['scratch_mb']}m,mode=700,uid={owner}")
    for path in config["read_only"]:
        bind_read_only(path, root + path)
    bind_read_only(config["sandbox"], root + "/sandbox")
    os.makedirs(root + "/dev")
    mount("tmpfs", root + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for device in ("zero", "urandom", "random"):
        bind_read_only("/dev/" + device, f"{root}/dev/{device}")
    open(root + "/dev/null", "a").close()
    mount("/dev/null", root + "/dev/null", None, MS_BIND)  # writable: writes to it are discarded
    os.makedirs(root + "/proc")
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(root + "/.old")
    check(libc.syscall(SYS_PIVOT_ROOT, root.encode(), (root + "/.old").encode()), "pivot_root")
    os.chdir("/")
    check(libc.umount2(b"/.old", MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def drop_privileges(uid):
    if uid is not None:  # real root: become a uid of its own, which drops every capability
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:  # root of a user namespace: keep uid 0 but no capabilities after exec
        for cap in range(LAST_CAP + 1):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        check(libc.prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0), "securebits")
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def main():
    config = json.loads(sys.argv[1])
    build_root(config["root"], config)
    drop_privileges(config["uid"])
    os.chdir("/tmp")
    env = {"PATH": "/usr/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    env.update(config["env"])
    # The worker is not PID 1: the kernel does not deliver SIGXCPU to a PID namespace's
    # init. This process waits for it, then exits, and every process left in the namespace dies.
    worker = os.fork()
    if worker == 0:
        os.execve(config["python"], [config["python"], "-I", "-S", "/sandbox/worker.py"], env)
    for fd in (0, 1):
        os.close(fd)
    while True:
        pid, status = os.wait()
        if pid == worker:
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
