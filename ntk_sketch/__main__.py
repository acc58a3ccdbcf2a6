"""Command line of ntk_sketch: ``python -m ntk_sketch demo [options]`` (``--help`` lists the options).

The same entry point is installed as the console script ``ntk-sketch`` (``ntk-sketch demo ...``).
"""
from __future__ import annotations

import sys

COMMANDS = {
    "demo": "NTKSketch, NTKRF, CNTKSketch, Nystrom-NTK, an MLP and exact NTK/CNTK kernel ridge on real images, "
            "one table",
}


def _usage(prog):
    lines = [f"usage: {prog} COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    lines += ["", f"`{prog} COMMAND --help` documents the options of a command."]
    return "\n".join(lines)


def main(argv=None, prog=None):
    """Dispatch to a sub-command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = prog or ("python -m ntk_sketch" if sys.argv[0].endswith("__main__.py") else "ntk-sketch")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(prog))
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        from .demo import main as demo_main

        return demo_main(rest, prog=f"{prog} demo")
    print(f"{prog}: unknown command {command!r}\n\n{_usage(prog)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
