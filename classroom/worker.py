"""The sandboxed worker: imports one submission's bnhelpers and runs the calls the grader sends.

Runs inside the jail (classroom/jail.py) as ``python -I -S /sandbox/worker.py``
with ``/sandbox`` holding this file, wire.py and the spliced ``bnhelpers``.
It computes and never judges: each request names a function and its
arguments; the answer is the return value and the arguments as they are
after the call (bn_param is updated in place; any other change is the
student's function modifying its input, which the grader reports). The
grader's checks and expected values never enter this process.
"""

import os
import sys


def set_limits(limits):
    """``{"CPU": seconds, "AS": bytes, ...}``: set before any student code runs, never raised again."""
    import resource

    for name, value in limits.items():
        soft = hard = int(value)
        if name == "CPU":
            hard = soft + 1  # SIGXCPU at the soft limit, SIGKILL one second later
        resource.setrlimit(getattr(resource, "RLIMIT_" + name), (soft, hard))


def main():
    import json

    set_limits(json.loads(os.environ.get("GRADER_LIMITS", "{}")))
    # The protocol keeps private copies of stdin and stdout; prints from student
    # code go to /dev/null instead of into the answers.
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    answers = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    # This folder (wire.py, bnhelpers), then numpy's site-packages, as the grader lists them.
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), *os.environ.get("GRADER_PATH", "").split(":")]
    import wire

    def read_exact(n):
        data = b""
        while len(data) < n:
            chunk = requests.read(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def send(value):
        data = wire.encode(value)
        view = memoryview(data)
        while view:
            view = view[os.write(answers, view) :]

    def problem(error):
        return {"error": type(error).__name__, "message": str(error)[:2000]}

    try:
        import bnhelpers
        from bnhelpers import batchnorm, conventions, layernorm, spatial
    except BaseException as error:
        send({"import_error": problem(error)})
        return
    modules = (bnhelpers, spatial, layernorm, batchnorm, conventions)
    named = {
        name: getattr(module, name)
        for module, name in ((batchnorm, "BatchNormCache"), (spatial, "SpatialCache"), (layernorm, "NormCache"))
        if hasattr(module, name)
    }

    def function(name):
        if name.startswith("convention:"):
            preset, method = name.removeprefix("convention:").split(".")
            return getattr(conventions.CONVENTIONS[preset], method)
        for module in modules:
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"bnhelpers has no function {name}")

    send({"ready": True})
    while True:
        try:
            request, _ = wire.decode(wire.read_message(read_exact), named)
        except EOFError:
            return
        args, kwargs = request["args"], request["kwargs"]
        try:
            value = function(request["function"])(*args, **kwargs)
            answer = {"value": value, "args": args, "kwargs": kwargs}
            send(answer)
        except wire.WireError as error:
            send(
                {
                    "error": "ReturnValueError",
                    "message": f"it returned or stored a value the grader cannot read: {error}",
                }
            )
        except BaseException as error:
            send(problem(error))


if __name__ == "__main__":
    main()
