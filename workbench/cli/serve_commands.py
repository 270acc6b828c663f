"""`workbench serve`: read-only Voila dashboards of released reports, one sign-in token per viewer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from workbench.cli import main
from workbench.errors import EnvironmentProblem

def _default_releases() -> str:
    """The project's release store (WORKBENCH_RELEASES, workbench.toml, or releases/ beside it)."""
    from workbench.config import releases_location

    return str(releases_location())


def _default_tokens() -> Path:
    """var/dashboard_tokens.json in the analyst's project (the folder of workbench.toml)."""
    from workbench.settings import project_root

    return project_root() / "var" / "dashboard_tokens.json"


tokens_option = click.option("--tokens", "tokens_file", type=click.Path(dir_okay=False, path_type=Path),
                             default=lambda: _default_tokens(), show_default="var/dashboard_tokens.json in the project",
                             help="Tokens file (token digest -> viewer).")


@main.group("serve", invoke_without_command=True)
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Release store (default: the project's, as `fill` writes it: WORKBENCH_RELEASES, "
                   "workbench.toml, releases/).")
@click.option("--port", type=click.IntRange(1, 65535), default=8866, show_default=True)
@click.option("--ip", default="127.0.0.1", show_default=True, help="Address to listen on.")
@tokens_option
@click.option("--live", is_flag=True, default=False,
              help="Run each page in a Voila kernel instead of serving the pre-rendered reports.")
@click.option("--preheat/--no-preheat", default=True, show_default=True,
              help="Live mode: keep a pool of kernels that have already loaded the dashboard.")
@click.option("--pool-size", type=click.IntRange(0, 50), default=2, show_default=True,
              help="Live mode: preheated kernels kept ready.")
@click.option("--cull-idle", type=click.IntRange(10), default=600, show_default=True,
              help="Live mode: shut down a viewer's kernel after this many idle seconds.")
@click.option("--kernels-per-viewer", type=click.IntRange(1, 50), default=2, show_default=True,
              help="Live mode: kernels one viewer holds; another page takes over their oldest.")
@click.option("--max-kernels", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Live mode: kernels serving viewers at once (the pool is extra); more pages get 503.")
@click.option("--kernel-lifetime", type=click.IntRange(10), default=1800, show_default=True,
              help="Live mode: seconds a viewer's kernel lives, however busy.")
@click.option("--sign-in-failures", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="Wrong tokens from one address within --sign-in-window before it gets 429.")
@click.option("--sign-in-window", type=click.IntRange(1, 86_400), default=60, show_default=True,
              help="Seconds over which wrong tokens are counted.")
@click.pass_context
def serve_command(ctx, releases, port, ip, tokens_file, live, preheat, pool_size, cull_idle, kernels_per_viewer,
                  max_kernels, kernel_lifetime, sign_in_failures, sign_in_window) -> None:
    """Start the partner and school-leader dashboards over the release store.

    Each viewer signs in with their token (http://HOST:PORT/?token=TOKEN, or the login form) and
    sees only the approved aggregate releases that name them. Create tokens with
    `workbench serve tokens add partner:P-04` (or `... tokens demo`). Reports are rendered once
    and served as static pages; `--live` runs Voila kernels instead (see docs/dashboards.md).
    """
    if ctx.invoked_subcommand:
        return
    from workbench.dashboard.access import TokenBook, kernel_environment

    if not TokenBook(tokens_file).entries():
        raise EnvironmentProblem(f"{tokens_file} has no tokens: run `workbench serve tokens add VIEWER` "
                                   "or `workbench serve tokens demo` first")
    args = [sys.executable, "-m", "workbench.dashboard.server", "--releases", str(releases or _default_releases()),
            "--tokens", str(tokens_file), "--port", str(port), "--ip", ip, "--pool-size", str(pool_size),
            "--cull-idle", str(cull_idle), "--kernels-per-viewer", str(kernels_per_viewer),
            "--max-kernels", str(max_kernels), "--kernel-lifetime", str(kernel_lifetime),
            "--sign-in-failures", str(sign_in_failures), "--sign-in-window", str(sign_in_window)]
    if live:
        args.append("--live")
    if not preheat:
        args.append("--no-preheat")
    click.echo(f"Dashboards at http://{ip}:{port}/ (sign in with a viewer token; Ctrl-C stops)")
    # The server and its kernels keep allow-listed settings only (no warehouse or other secrets).
    # The server replaces this process, so stopping this pid stops the server.
    os.execve(sys.executable, args, kernel_environment(os.environ))


@serve_command.group("tokens")
def tokens_group() -> None:
    """Sign-in tokens of dashboard viewers (partner:ID or school:ID)."""


@tokens_group.command("add")
@click.argument("viewer")
@click.option("--label", default="", help="Who the token is for (kept in the file).")
@click.option("--token", "token_value", default=None, help="Use this token instead of a random one (16+ chars).")
@tokens_option
def tokens_add(viewer, label, token_value, tokens_file) -> None:
    """Create a token for VIEWER (e.g. partner:P-04, school:1213); prints it once."""
    from workbench.dashboard.access import TokenBook

    # A malformed viewer or token is an AccessError, an input mistake: exit 2 like any other.
    token = TokenBook(tokens_file).add(viewer, label, token_value)
    click.echo(f"{viewer}\t{token}")


@tokens_group.command("revoke")
@click.argument("viewer")
@tokens_option
def tokens_revoke(viewer, tokens_file) -> None:
    """Remove every token of VIEWER (takes effect at once, also on a running server)."""
    from workbench.dashboard.access import TokenBook

    click.echo(f"removed {TokenBook(tokens_file).revoke(viewer)} token(s) of {viewer}")


@tokens_group.command("list")
@tokens_option
def tokens_list(tokens_file) -> None:
    """Viewers with tokens (the tokens themselves are not stored)."""
    from workbench.dashboard.access import TokenBook

    for digest, entry in sorted(TokenBook(tokens_file).entries().items(), key=lambda item: item[1].viewer):
        click.echo(f"{entry.viewer}\t{entry.label}\tcreated {entry.created}\t{digest[:12]}")


@tokens_group.command("demo")
@click.option("--releases", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--port", type=click.IntRange(1, 65535), default=8866, show_default=True,
              help="Port used in the printed links.")
@tokens_option
def tokens_demo(releases, port, tokens_file) -> None:
    """One new token per viewer named by a dashboard release in the store; prints sign-in links."""
    from workbench.dashboard.access import TokenBook, allowed_releases, viewers_named
    from workbench.release.store import ReleaseStore

    store = ReleaseStore(releases or _default_releases())
    viewers = sorted({v for r in store.releases() for v in viewers_named(store.manifest(r))})
    viewers = [v for v in viewers if allowed_releases(store, v)]
    if not viewers:
        raise EnvironmentProblem(f"no dashboard releases in {store.root}: run `workbench demo` first")
    book = TokenBook(tokens_file)
    for viewer in viewers:
        token = book.add(viewer, "demo")
        click.echo(f"{viewer}\thttp://127.0.0.1:{port}/?token={token}")
