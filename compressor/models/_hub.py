"""Fetching a teacher's pretrained file from the Hugging Face hub or an official URL, failing fast offline.

huggingface_hub retries an unreachable host for ~25 s per file, so before any download we probe the
host (or the HTTPS proxy) with a 3 s connect; when that fails, or ``HF_HUB_OFFLINE=1`` is set, only
the local caches are looked at (the hub cache and torch hub's ``checkpoints/``). Downloaded files are
read like ``--teacher-weights`` files (:func:`~compressor.models.checkpoints.read_state_dict`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import torch

from compressor.errors import CompressorError

HF_PREFIX = "hf-hub:"
PROBE_TIMEOUT_S = 3.0
_HF_HOST = "huggingface.co"


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def reachable(host: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host`` (or to the HTTPS proxy, when one is set) opens in time."""
    if _offline_env():
        return False
    port = 443
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy:
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parts.hostname or host, parts.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _split_hf(source: str) -> tuple[str, str]:
    repo, _, filename = source[len(HF_PREFIX):].rpartition("/")
    return repo, filename


def _url_cache(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlsplit(url).path)


def cached(source: str) -> Path | None:
    """The local copy of ``source`` if a previous download left one."""
    if source.startswith(HF_PREFIX):
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(*_split_hf(source))
        return Path(hit) if isinstance(hit, str) else None
    path = _url_cache(source)
    return path if path.is_file() else None


def download(source: str) -> Path:
    """Download ``source`` (``hf-hub:<repo>/<file>`` or an https URL) into the usual cache."""
    if source.startswith(HF_PREFIX):
        from huggingface_hub import hf_hub_download

        repo, filename = _split_hf(source)
        return Path(hf_hub_download(repo_id=repo, filename=filename))
    path = _url_cache(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(source, str(path), progress=False)
    return path


def fetch(sources: tuple[str, ...], teacher: str) -> tuple[Path, str]:
    """The first of ``sources`` that is cached or downloads: ``(local path, source)``."""
    if not sources:
        raise CompressorError(f"teacher {teacher!r} has no download source; pass --teacher-weights PATH "
                              "(a local checkpoint) or --teacher-weights random")
    for source in sources:
        hit = cached(source)
        if hit is not None:
            return hit, source
    errors: list[str] = []
    probed: dict[str, bool] = {}
    for source in sources:
        host = _HF_HOST if source.startswith(HF_PREFIX) else (urlsplit(source).hostname or "")
        if host not in probed:
            probed[host] = reachable(host)
        if not probed[host]:
            errors.append(f"{host} unreachable")
            continue
        try:
            return download(source), source
        except Exception as err:  # HTTP, hub and file-system errors: try the next source
            errors.append(f"{source}: {(str(err).splitlines() or [type(err).__name__])[0][:120]}")
    raise CompressorError(
        f"cannot fetch the pretrained weights of teacher {teacher!r} "
        f"({'; '.join(dict.fromkeys(errors))}; nothing cached); "
        "download the checkpoint elsewhere and pass --teacher-weights PATH, or --teacher-weights random "
        "for a random teacher (smoke tests only)")
