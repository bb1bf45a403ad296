"""Commands of the archive stage: pack, verify and replay one device's results; merge devices."""

from __future__ import annotations

from edgelaw.core.console import json_arg, say


def args_archive(p) -> None:
    p.add_argument("--device", required=True)
    p.add_argument("--config", required=True, type=json_arg, help="the validated config as JSON")
    p.add_argument("--files", nargs="+", required=True, help="result files, relative to the working directory")
    p.add_argument("--out", required=True)


def cmd_archive(a) -> None:
    from pathlib import Path

    from edgelaw.archive.bundle import pack_results

    manifest = pack_results(a.out, a.device, a.config, a.files)
    size = Path(a.out).stat().st_size
    say(f"archive {a.out}: {len(manifest['files'])} files, {size / 1e6:.1f} MB; check it with "
        f"python -m edgelaw verify {a.out}")


def args_verify(p) -> None:
    p.add_argument("archives", nargs="+")


def cmd_verify(a) -> None:
    from edgelaw.archive.bundle import verify

    for path in a.archives:
        manifest = verify(path)
        print(f"{path}: OK, {len(manifest['files'])} files match the manifest (device {manifest.get('device')}, "
              f"created {manifest.get('created')}, commit {manifest.get('git_commit')})")


def args_replay(p) -> None:
    p.add_argument("archive")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--overwrite", action="store_true", help="unpack into --out-dir even if it holds files")


def cmd_replay(a) -> None:
    from pathlib import Path

    from edgelaw.archive.replay import replay

    replay(Path(a.archive), Path(a.out_dir), overwrite=a.overwrite)


def args_cross_device(p) -> None:
    p.add_argument("archives", nargs="*", help="archives of devices measured elsewhere")
    p.add_argument("--devices", nargs="*", default=[],
                   help="devices measured here: their results/{device}/ tables (a fleet's run)")
    p.add_argument("--out-dir", required=True)


def cmd_cross_device(a) -> None:
    from pathlib import Path

    from edgelaw.archive.cross_device import cross_device

    cross_device([Path(p) for p in a.archives], Path(a.out_dir), a.devices)
    say(f"cross-device report: {a.out_dir}/index.html")
