"""The persistent Python interpreter of the sidecar-agent (its agent side: python-repl.ts).

    python3 -u python-repl-driver.py <control-fd> <stdin-fifo> <marker-hex>

The agent sends one JSON line per exec on the control socket:
    {"n": 1, "code": "...", "cwd": "/mnt/data", "args": [], "stdin": false, "tools"?: [{"name": "get-weather", "py": "get_weather"}]}
(programmatic tool calling: each tool becomes a function of the namespace; a call
sends {"toolCalls": n, "calls": [{"id", "name", "input"}], "sync": s} (after the line
NUL ESC <marker> ":" <s> LF on both pipes, s >= 10**15) and blocks until the
agent writes {"toolResults": n, "results": [{"call_id", "result", "is_error", "error_message"?}]})
or per operation (no "n"; handled in order with the execs, never during one):
    {"op": "preload", "k": 1, "modules": ["numpy", ...]}   import these now
    {"op": "save", "k": 2, "maxBytes": 1000}               pickle the user's namespace
    {"op": "restore", "k": 3, "data": "<base64>"}          load a saved namespace into it
and the driver answers with JSON lines:
    {"ready": true}                                once, at start
    {"running": n, "cpuUs": t}                     the exec's stdin is open; SIGINT is safe from now on
    {"display": n, "mime": "image/png", "data": "<base64>", "name": "..."}
                                                   a figure shown by exec n (plt.show())
    {"done": n, "code": 0, "signal": null, ...}    after the exec's output and its end markers
    {"result": k, ...}                             the end of operation k (fields: see run_op)
During an operation fds 1 and 2 point to /dev/null: nothing it prints reaches an exec.
The user's output goes to fds 1 and 2 as it is produced. At the end of each exec
the line NUL ESC <marker> ":" <n> LF is written to both, so that the agent
knows where this exec's output ends on each pipe.
"""

import ast
import base64
import builtins
import importlib
import importlib.abc
import importlib.util
import io
import json
import linecache
import os
import resource
import signal
import socket
import sys
import threading
import time
import types
import zlib

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
        body, last = compile_user_code(source, filename)
        outcome = eval(body, namespace)
        if body.co_flags & CO_COROUTINE:  # --- programmatic tool calling: top-level await
            run_coroutine(outcome)
        if last is not None:
            value = eval(last, namespace)
            if last.co_flags & CO_COROUTINE:
                value = run_coroutine(value)
            display_result(value)
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


# ---- the control channel ----

control = None
control_lock = threading.Lock()
driver_pid = os.getpid()
current_exec = None  # the number of the exec that runs, or None


def send(message):
    with control_lock:
        control.sendall(json.dumps(message).encode() + b"\n")


# ---- rich output: matplotlib figures ----


def send_figures(pyplot):
    """Send every open figure as PNG for the exec that runs, then close them (as an inline backend does)."""
    if current_exec is None or os.getpid() != driver_pid:
        return
    from matplotlib._pylab_helpers import Gcf

    for manager in Gcf.get_all_fig_managers():
        send_figure(manager.canvas.figure, manager.num)
    pyplot.close("all")


def send_figure(figure, num=None):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    label = figure.get_label() if hasattr(figure, "get_label") else ""
    name = label or (f"figure-{num}" if num is not None else "figure")
    message = {"display": current_exec, "mime": "image/png", "data": base64.b64encode(buffer.getvalue()).decode("ascii"), "name": name}
    send(message)


def hook_pyplot(pyplot):
    """Make pyplot.show() send the open figures (once per pyplot module)."""
    if getattr(pyplot.show, "_agent_show", False):
        return

    def show(*args, **kwargs):
        send_figures(pyplot)

    show._agent_show = True
    show.__doc__ = pyplot.show.__doc__
    pyplot.show = show


class PyplotFinder(importlib.abc.MetaPathFinder):
    """Hooks matplotlib.pyplot.show when (and only when) the user's code imports pyplot."""

    busy = False

    def find_spec(self, name, path, target=None):
        if name != "matplotlib.pyplot" or self.busy:
            return None
        self.busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            quietly(hook_pyplot, module)

        spec.loader.exec_module = exec_module
        return spec


def after_exec():
    """Figures do not outlive the exec that made them."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        quietly(hook_pyplot, pyplot)
        quietly(pyplot.close, "all")


def display_result(value):
    """IPython-style: a matplotlib Figure as the value of the code's last expression is shown."""
    figure_module = sys.modules.get("matplotlib.figure")
    if figure_module is not None and isinstance(value, figure_module.Figure):
        send_figure(value, getattr(value, "number", None))


def compile_user_code(source, filename):
    """The code as one exec block, and its last statement apart when it is an expression (else None)."""
    try:
        if "matplotlib" in sys.modules:  # no parse of every exec's code for a figure that cannot exist
            tree = ast.parse(source, filename, "exec")
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = tree.body.pop()
                body = compile(tree, filename, "exec", flags=TOP_LEVEL_AWAIT, dont_inherit=True)
                return body, compile(ast.Expression(last.value), filename, "eval", flags=TOP_LEVEL_AWAIT, dont_inherit=True)
        return compile(source, filename, "exec", flags=TOP_LEVEL_AWAIT, dont_inherit=True), None
    except SyntaxError as error:
        raise error.with_traceback(None) from None  # as compile() itself raises it: no frames but the driver's


# ---- programmatic tool calling (POST /exec/programmatic) ----

TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
CO_COROUTINE = 0x80  # inspect.CO_COROUTINE
tool_commands = None  # the control channel's reader, set by main()
tool_pending = []  # calls made in this event-loop turn: [(call, future)]
tool_count = 0
# Sync points: before a round of calls goes out, a marker numbered from SYNC_BASE (never an exec
# number) is written to both pipes, and the round names it: the agent hands the round on only once
# it has read both pipes up to it, so what the program printed before the calls stays before them.
SYNC_BASE = 10**15
sync_count = 0
sync_marker = None  # (real_out, real_err, marker), set by main()


class ToolError(Exception):
    """A declared tool failed: raised where the program called it."""


def run_coroutine(coroutine):
    import asyncio

    return asyncio.run(coroutine)


def tool_round(calls):
    """Send one round of calls to the agent and block for its results: {call_id: (ok, value)}."""
    global sync_count
    flush_all()  # what the program printed before the call belongs to this round
    sync_count += 1
    point = SYNC_BASE + sync_count
    real_out, real_err, marker = sync_marker
    line = b"\x00\x1b" + marker + b":%d\n" % point
    os.write(real_out, line)
    os.write(real_err, line)
    send({"toolCalls": current_exec, "calls": calls, "sync": point})
    line = tool_commands.readline()
    if not line:
        raise SystemExit(1)
    message = json.loads(line)
    answers = {}
    for item in message.get("results", []):
        if item.get("is_error"):
            answers[item.get("call_id")] = (False, item.get("error_message") or "the tool failed")
        else:
            answers[item.get("call_id")] = (True, decode_result(item.get("result")))
    return answers


def decode_result(value):
    """Tool results are decoded Python values: a JSON text becomes its value."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") or text in ("true", "false", "null"):
            try:
                return json.loads(text)
            except ValueError:
                pass
    return value


def tool_answer(answer):
    ok, value = answer
    if not ok:
        raise ToolError(value)
    return value


def new_call(name, args, kwargs):
    global tool_count
    tool_count += 1
    if args and not kwargs and len(args) == 1 and isinstance(args[0], dict):
        data = args[0]
    elif args:
        raise TypeError(f"{name}() takes keyword arguments only (await {name}(arg=value))")
    else:
        data = kwargs
    return {"id": f"call_{current_exec}_{tool_count}", "name": name, "input": data}


def flush_tool_calls():
    """All the calls this turn of the event loop made (asyncio.gather) go out as one round."""
    batch = tool_pending[:]
    tool_pending.clear()
    if not batch:
        return
    answers = tool_round([call for call, _ in batch])
    for call, future in batch:
        if future.done():
            continue
        answer = answers.get(call["id"], (False, f"no result for tool call {call['id']}"))
        if answer[0]:
            future.set_result(answer[1])
        else:
            future.set_exception(ToolError(answer[1]))


def make_tool(name, py_name):
    def tool(*args, **kwargs):
        import asyncio

        call = new_call(name, args, kwargs)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:  # called without await, outside any event loop: a plain blocking call
            return tool_answer(tool_round([call]).get(call["id"], (False, f"no result for tool call {call['id']}")))
        future = loop.create_future()
        if not tool_pending:
            loop.call_soon(flush_tool_calls)
        tool_pending.append((call, future))
        return future

    tool.__name__ = tool.__qualname__ = py_name
    tool.__doc__ = f"The declared tool {name!r}: await {py_name}(arg=value)."
    return tool


def define_tools(tools, namespace):
    """The exec's tools as functions of the namespace; returns them, for remove_tools."""
    builtins.ToolError = ToolError  # a builtin: never part of a saved state
    defined = {}
    for item in tools or []:
        defined[item["py"]] = namespace[item["py"]] = make_tool(item["name"], item["py"])
    return defined


def remove_tools(defined, namespace):
    """Tools live for their exec only (and must not reach a saved state)."""
    tool_pending.clear()
    for name, tool in defined.items():
        if namespace.get(name) is tool:
            del namespace[name]


# ---- operations: preload, saved state ----


def self_memory():
    """RSS and PSS of this interpreter in bytes, from /proc (None when unreadable)."""
    result = {}
    try:
        with open("/proc/self/smaps_rollup") as rollup:
            for line in rollup:
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    result[key.lower() + "Bytes"] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return result


def op_preload(request, namespace):
    start = time.monotonic()
    loaded, failed = [], []
    for name in request.get("modules", []):
        try:
            importlib.import_module(name)
            loaded.append(name)
        except BaseException as error:
            failed.append({"name": name, "error": f"{type(error).__name__}: {error}"})
    after_exec()
    return {"modules": loaded, "failed": failed, "ms": round((time.monotonic() - start) * 1000), "pid": os.getpid(), **self_memory()}


def user_names(namespace):
    """The user's own names: not dunders (the module's, the builtins)."""
    return [name for name in namespace if not (name.startswith("__") and name.endswith("__"))]


def error_text(error):
    return f"{type(error).__name__}: {error}"[:500]


def op_save(request, namespace):
    try:
        import cloudpickle
    except ImportError as error:
        return {"bytes": 0, "names": [], "skipped": [], "error": f"cannot save: {error_text(error)}"}
    modules, values, skipped = {}, {}, []
    for name in user_names(namespace):
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            modules[name] = value.__name__  # re-imported by name on restore
        else:
            values[name] = value
    state = {"version": 1, "modules": modules, "values": values}
    try:
        payload = cloudpickle.dumps(state)  # all at once keeps shared references shared
    except BaseException:
        kept = {}
        for name, value in values.items():
            try:
                cloudpickle.dumps(value)
                kept[name] = value
            except BaseException as error:
                skipped.append({"name": name, "error": error_text(error)})
        state["values"] = kept
        try:
            payload = cloudpickle.dumps(state)
        except BaseException as error:
            return {"bytes": 0, "names": [], "skipped": skipped, "error": f"cannot save: {error_text(error)}"}
    data = zlib.compress(payload, 6)
    names = sorted([*modules, *state["values"]])
    result = {"bytes": len(data), "names": names, "skipped": skipped}
    limit = request.get("maxBytes")
    if limit is not None and len(data) > limit:
        result["error"] = f"state is {len(data)} bytes, over the limit of {limit}"
        return result
    result["data"] = base64.b64encode(data).decode("ascii")
    return result


def op_restore(request, namespace):
    import pickle

    names, errors = [], []
    try:
        state = pickle.loads(zlib.decompress(base64.b64decode(request["data"])))
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError("not a saved state of this agent")
    except BaseException as error:
        return {"names": [], "error": f"cannot restore: {error_text(error)}"}
    for name, module in state["modules"].items():
        try:
            namespace[name] = importlib.import_module(module)
            names.append(name)
        except BaseException as error:
            errors.append(f"{name} (import {module}): {error_text(error)}")
    namespace.update(state["values"])
    names.extend(state["values"])
    result = {"names": sorted(names)}
    if errors:
        result["error"] = "cannot restore " + "; ".join(errors)
    return result


OPERATIONS = {"preload": op_preload, "save": op_save, "restore": op_restore}


def run_op(request, namespace, real_out, real_err):
    """One operation, with fds 1 and 2 (and sys.stdout/stderr) on /dev/null; returns its result message."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    try:
        result = OPERATIONS[request["op"]](request, namespace)
    except BaseException as error:
        result = {"error": f"{request['op']} failed: {error_text(error)}"}
    finally:
        flush_all()
        os.dup2(real_out, 1)
        os.dup2(real_err, 2)
    return {"result": request["k"], **result}


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
    global phase, interrupted, control, driver_pid, current_exec, tool_commands, sync_marker
    control_fd, fifo, marker = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
    os.set_inheritable(control_fd, False)
    control = socket.socket(fileno=control_fd)
    commands = control.makefile("rb")
    tool_commands = commands
    # Copies of the real stdout and stderr: for the markers, and to give every exec fds 1 and 2 back.
    real_out, real_err = os.dup(1), os.dup(2)
    sync_marker = (real_out, real_err, marker)
    os.mkfifo(fifo, 0o600)

    # The user's code runs in a module of its own named __main__ (pickle and
    # dataclasses look classes up there), with none of the driver in sight.
    user_main = types.ModuleType("__main__")
    user_main.__builtins__ = builtins
    sys.modules["__main__"] = user_main
    del sys.path[0]  # the driver's folder; a script run has its own, empty, folder there

    driver_pid = os.getpid()
    if "matplotlib.pyplot" not in sys.modules:
        sys.meta_path.insert(0, PyplotFinder())
    signal.signal(signal.SIGINT, on_sigint)
    send({"ready": True})
    for line in commands:
        request = json.loads(line)
        if "op" in request:
            send(run_op(request, user_main.__dict__, real_out, real_err))
            continue
        if "toolResults" in request:
            continue  # the answer to a round its exec stopped waiting for (interrupted while it waited)
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

        current_exec = n
        tools = define_tools(request.get("tools"), user_main.__dict__)
        exit_code, signal_name = report(run_user_code(code, filename, user_main.__dict__))
        remove_tools(tools, user_main.__dict__)
        flush_all()
        if os.getpid() != driver_pid:
            os._exit(1 if exit_code is None else exit_code)  # a fork of the user's that ran off the end of the code
        current_exec = None
        after_exec()
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
