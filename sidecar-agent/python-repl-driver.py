"""The persistent Python interpreter of the sidecar-agent (its agent side: python-repl.ts).

    python3 -u python-repl-driver.py <control-fd> <stdin-fifo> <marker-hex>

The agent sends one JSON line per exec on the control socket:
    {"n": 1, "code": "...", "cwd": "/mnt/data", "args": [], "stdin": false}
and the driver answers with JSON lines:
    {"ready": true}                                once, at start
    {"running": n, "cpuUs": t}                     the exec's stdin is open; SIGINT is safe from now on
    {"done": n, "code": 0, "signal": null, ...}    after the exec's output and its end markers
The user's output goes to fds 1 and 2 as it is produced. At the end of each exec
the line NUL ESC <marker> ":" <n> LF is written to both, so that the agent
knows where this exec's output ends on each pipe.
"""

import builtins
import io
import json
import linecache
import os
import resource
import signal
import socket
import sys
import types

IDLE, PREPARE, USER = "idle", "prepare", "user"
phase = IDLE
interrupted = False


def on_sigint(signum, frame):
    # Raise only inside the user's code: an interrupt that comes while the
    # driver prepares the exec waits for the first line of that code.
    global interrupted
    if phase == USER:
        raise KeyboardInterrupt
    if phase == PREPARE:
        interrupted = True


def usage():
    return resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)


def cpu_us():
    """CPU time of the interpreter and of the children it reaped, in microseconds."""
    own, children = usage()
    return round((own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime) * 1e6)


def peak_rss_bytes():
    # ru_maxrss is a peak over the interpreter's whole life, not over one exec.
    own, children = usage()
    return max(own.ru_maxrss, children.ru_maxrss) * 1024


def run_user_code(source, filename, namespace):
    """Run one exec's code; return the exception that ended it, or None."""
    global phase
    try:
        phase = USER
        if interrupted:
            raise KeyboardInterrupt
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        return None
    except BaseException as error:
        return error
    finally:
        phase = IDLE


def report(error):
    """Print an uncaught exception as a script run would; return (exit code, signal name)."""
    if error is None:
        return 0, None
    if isinstance(error, SystemExit):
        if error.code is None:
            return 0, None
        if isinstance(error.code, int):
            return error.code & 0xFF, None
        quietly(print, error.code, file=sys.stderr)
        return 1, None
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next  # the driver's own frames
    error = error.with_traceback(tb)
    sys.last_type, sys.last_value, sys.last_traceback = type(error), error, tb
    import traceback  # the built-in hook cannot show source lines kept in linecache

    hook = sys.excepthook
    if hook is sys.__excepthook__ or not quietly(hook, type(error), error, tb):
        quietly(traceback.print_exception, type(error), error, tb)
    # A script ended by an uncaught KeyboardInterrupt dies by SIGINT.
    return (None, "SIGINT") if isinstance(error, KeyboardInterrupt) else (1, None)


def quietly(function, *args, **kwargs):
    """Call `function`; False when it raised (a broken hook or stream of the user's must not stop the driver)."""
    try:
        function(*args, **kwargs)
        return True
    except BaseException:
        return False


def flush_all():
    """Flush sys.stdout and sys.stderr, whatever the user's code made of them."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        quietly(lambda: stream.flush())


STDIN_ENCODING, STDIN_ERRORS = sys.stdin.encoding, sys.stdin.errors


def set_stdin(path):
    """fd 0 from `path` (the exec's FIFO or /dev/null), and a new sys.stdin without stale buffered input."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    os.dup2(fd, 0)
    os.close(fd)
    raw = io.FileIO(0, "r", closefd=False)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(raw), encoding=STDIN_ENCODING, errors=STDIN_ERRORS, newline="\n")


def main():
    global phase, interrupted
    control_fd, fifo, marker = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
    os.set_inheritable(control_fd, False)
    control = socket.socket(fileno=control_fd)
    commands = control.makefile("rb")
    # Copies of the real stdout and stderr: for the markers, and to give every exec fds 1 and 2 back.
    real_out, real_err = os.dup(1), os.dup(2)
    os.mkfifo(fifo, 0o600)

    # The user's code runs in a module of its own named __main__ (pickle and
    # dataclasses look classes up there), with none of the driver in sight.
    user_main = types.ModuleType("__main__")
    user_main.__builtins__ = builtins
    sys.modules["__main__"] = user_main
    del sys.path[0]  # the driver's folder; a script run has its own, empty, folder there

    def send(message):
        control.sendall(json.dumps(message).encode() + b"\n")

    driver_pid = os.getpid()
    signal.signal(signal.SIGINT, on_sigint)
    send({"ready": True})
    for line in commands:
        request = json.loads(line)
        n, code = request["n"], request["code"]
        phase, interrupted = PREPARE, False
        start_cpu = cpu_us()
        signal.signal(signal.SIGINT, on_sigint)  # the user's code may have replaced it
        os.chdir(request["cwd"])
        sys.argv = [""] + request["args"]
        os.dup2(real_out, 1)
        os.dup2(real_err, 2)
        set_stdin(fifo if request["stdin"] else os.devnull)
        filename = f"<exec {n}>"
        # Tracebacks and inspect find the source here, also when a later exec calls this one's functions.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        send({"running": n, "cpuUs": start_cpu})

        exit_code, signal_name = report(run_user_code(code, filename, user_main.__dict__))
        flush_all()
        if os.getpid() != driver_pid:
            os._exit(1 if exit_code is None else exit_code)  # a fork of the user's that ran off the end of the code
        set_stdin(os.devnull)
        if request["stdin"]:
            # A fresh FIFO: a process that kept the old one open cannot read the next exec's input.
            os.unlink(fifo)
            os.mkfifo(fifo, 0o600)
        end = b"\x00\x1b" + marker + b":%d\n" % n
        os.write(real_out, end)
        os.write(real_err, end)
        cpu_ms = round((cpu_us() - start_cpu) / 1000)
        send({"done": n, "code": exit_code, "signal": signal_name, "cpuMs": cpu_ms, "memBytes": peak_rss_bytes()})


if __name__ == "__main__":
    main()
