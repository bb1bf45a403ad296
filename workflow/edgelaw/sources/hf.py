"""The `hf` source: one GGUF from a Hugging Face Hub repository at a pinned revision.

The file lands in the standard HF cache. The token, if any, comes from the environment (HF_TOKEN)
and is read by huggingface_hub itself: edgelaw never stores or prints it. HF_ENDPOINT selects the hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgelaw.core.errors import EdgelawError
from edgelaw.core.console import say
from edgelaw.core.hashing import check_sha256


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def download(name: str, repo_id: str, filename: str, revision: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hf_errors

    where = f"{repo_id}@{revision}/{filename}"
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision))
    # LocalEntryNotFoundError subclasses EntryNotFoundError: it must come first.
    except hf_errors.LocalEntryNotFoundError as exc:
        raise EdgelawError(
            f"model {name}: cannot reach the Hub at {endpoint()} for {where} and it is not in the local cache; "
            "check the network or HF_ENDPOINT, or fill the cache on a connected machine"
        ) from exc
    except hf_errors.EntryNotFoundError as exc:
        raise EdgelawError(f"model {name}: {filename} is not in {repo_id} at revision {revision}; fix models.{name}.filename") from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise EdgelawError(f"model {name}: revision {revision} not found in {repo_id}; fix models.{name}.revision") from exc
    except hf_errors.GatedRepoError as exc:
        raise EdgelawError(f"model {name}: {repo_id} is gated; accept its terms on the Hub and export HF_TOKEN") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise EdgelawError(
            f"model {name}: repository {repo_id} not found (or private: export HF_TOKEN); fix models.{name}.repo_id"
        ) from exc
    except hf_errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise EdgelawError(f"model {name}: the Hub at {endpoint()} answered HTTP {status} for {where}") from exc
    except OSError as exc:
        raise EdgelawError(f"model {name}: download of {where} from {endpoint()} failed: {exc}") from exc


def hub_sha256(name: str, repo_id: str, filename: str, revision: str) -> str:
    """The sha256 the Hub records for an LFS file at a commit (its X-Linked-Etag): content-addressed,
    so a pinned revision plus this check is as strong as a sha256 written in the config."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        etag = get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision)).etag or ""
    except Exception as exc:  # the download just succeeded, so this is rare: say what failed
        raise EdgelawError(f"model {name}: could not read the Hub's checksum of {filename}: {exc}; set its sha256 in the config") from exc
    etag = etag.strip('"').lower()
    if len(etag) != 64 or any(c not in "0123456789abcdef" for c in etag):
        raise EdgelawError(
            f"model {name}: the Hub gives no sha256 for {repo_id}/{filename} (not an LFS file); set its sha256 in the config"
        )
    return etag


def fetch(name: str, spec: dict, workdir: Path) -> tuple[Path, dict]:
    path = download(name, spec["repo_id"], spec["filename"], spec["revision"])
    expected = spec.get("sha256")
    origin = "config"
    if not expected:
        expected, origin = hub_sha256(name, spec["repo_id"], spec["filename"], spec["revision"]), "hub"
    sha = check_sha256(path, expected, f"model {name}")
    if origin == "hub":
        say(f"model {name}: {spec['filename']} matches the Hub's sha256 {sha} at {spec['revision'][:12]}; "
            "write it in the config as sha256 to pin it there too")
    info = {"kind": "hf", "repo_id": spec["repo_id"], "filename": spec["filename"], "revision": spec["revision"],
            "sha256": sha, "sha256_from": origin}
    return path, info
