"""The ``featviz`` command line: a thin layer over the library.

Each ``cmd_*.py`` module in this package defines one click command named
``command``; they are discovered here so that adding a command touches one file.
Errors a user can fix end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shlex
import signal
import sys
import threading

import click

from .. import __version__
from ..errors import FeatvizError
from ..fileio import ENVIRONMENT_ERRNOS, environment_error, release_all, set_command_line


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="featviz")
def cli() -> None:
    """featviz: hierarchical quadratic DenseNets, joint vs layerwise training,
    feature visualization and adversarial probing."""


def _register() -> None:
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
        command = importlib.import_module(f"{__name__}.{mod}").command
        cli.add_command(command)


_register()


def _fail(message: str, code: int) -> int:
    click.echo(f"featviz: error: {' '.join(str(message).split())}", err=True)
    return code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``finally`` runs (temporary folders go)."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``featviz`` console script.

    However the command ends (success, an error, Ctrl-C, SIGTERM) the output folders it claimed
    are released: their temporary areas and lock files are removed."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = _run(argv)
    finally:
        release_all()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(rv if isinstance(rv, int) else 0)


def _run(argv: list[str] | None) -> int | None:
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        set_command_line(shlex.join(["featviz", *map(str, args)]))  # named by output markers
        rv = cli.main(args=args, prog_name="featviz", standalone_mode=False, obj={"argv": args})
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `featviz`: show help
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        rv = 0
    except click.UsageError as exc:
        cmd = exc.ctx.command_path if exc.ctx else "featviz"
        rv = _fail(f"{exc.format_message()} (see `{cmd} --help`)", 2)
    except click.ClickException as exc:
        rv = _fail(exc.format_message(), 2)
    except FeatvizError as exc:
        rv = _fail(exc.one_line(), exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:  # click turns Ctrl-C into Abort
        if isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated):
            click.echo("featviz: terminated; temporary files removed", err=True)
            return 143
        click.echo("featviz: interrupted", err=True)
        rv = 130
    except BrokenPipeError:
        rv = 0
    except Exception as exc:  # an internal error: still one line unless debugging
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:  # disk full, permission denied
            return _fail(environment_error(exc).one_line(), 2)
        if isinstance(exc, RuntimeError) and "does not require grad" in str(exc):  # the user's model's fault
            return _fail("the model's output has no gradient with respect to its input (is its forward pass "
                         "under torch.no_grad() or detached?); gradient-based attacks and maximize need one", 2)
        if os.environ.get("FEATVIZ_DEBUG"):
            raise
        rv = _fail(f"internal error: {exc.__class__.__name__}: {exc} "
                   "(set FEATVIZ_DEBUG=1 for the traceback and please report it)", 1)
    return rv
