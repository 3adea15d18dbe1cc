"""Fetching a teacher's pretrained file from the Hugging Face hub or an official URL, failing fast offline.

huggingface_hub retries an unreachable host for ~25 s per file, so before any download we probe the
host (``HF_ENDPOINT`` when set, e.g. a mirror; else huggingface.co) or the proxy with a 3 s connect;
when that fails, or ``HF_HUB_OFFLINE=1`` is set, only the local caches are looked at (the hub cache
and torch hub's ``checkpoints/``). ``HF_ENDPOINT`` is read at call time (huggingface_hub reads it once,
at import). A gated repository (DINOv3) fails with a message naming ``HF_TOKEN`` and the manual
download; every other failure names the repository and file to fetch by hand. Downloaded files are
read like ``--teacher-weights`` files (:func:`~compressor.models.checkpoints.read_state_dict`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from compressor.errors import CompressorError

HF_PREFIX = "hf-hub:"
PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hf_endpoint() -> str:
    """The hub to use: ``HF_ENDPOINT`` (a mirror) when set, read now rather than at import."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host (or to the proxy for its scheme) opens in time."""
    if _offline_env():
        return False
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host, port = parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)
    var = "HTTP_PROXY" if parts.scheme == "http" else "HTTPS_PROXY"
    proxy = os.environ.get(var) or os.environ.get(var.lower())
    if proxy and not _no_proxy(host):
        pp = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = pp.hostname or host, pp.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _no_proxy(host: str) -> bool:
    skip = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    return any(host == h or host.endswith("." + h.lstrip(".")) for h in (s.strip() for s in skip.split(",")) if h)


def split_hf(source: str) -> tuple[str, str]:
    """``hf-hub:org/repo/file`` → ``("org/repo", "file")``."""
    repo, _, filename = source[len(HF_PREFIX):].rpartition("/")
    return repo, filename


def manual_url(source: str) -> str:
    """Where a browser (or curl) gets ``source`` by hand."""
    if source.startswith(HF_PREFIX):
        repo, filename = split_hf(source)
        return f"{hf_endpoint()}/{repo}/resolve/main/{filename}"
    return source


def _url_cache(url: str) -> Path:
    import torch  # here, not at the top: the zoo's specs name their sources without loading torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlsplit(url).path)


def cached(source: str) -> Path | None:
    """The local copy of ``source`` if a previous download left one."""
    if source.startswith(HF_PREFIX):
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(*split_hf(source))
        return Path(hit) if isinstance(hit, str) else None
    path = _url_cache(source)
    return path if path.is_file() else None


def download(source: str) -> Path:
    """Download ``source`` (``hf-hub:<repo>/<file>`` or an https URL) into the usual cache."""
    if source.startswith(HF_PREFIX):
        from huggingface_hub import hf_hub_download

        repo, filename = split_hf(source)
        return Path(hf_hub_download(repo_id=repo, filename=filename, endpoint=hf_endpoint()))
    import torch

    path = _url_cache(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(source, str(path), progress=False)
    return path


def _gated(err: BaseException) -> bool:
    from huggingface_hub.errors import GatedRepoError

    return isinstance(err, GatedRepoError)


def fetch(sources: tuple[str, ...], teacher: str, manual: str = "") -> tuple[Path, str]:
    """The first of ``sources`` that is cached or downloads: ``(local path, source)``.

    ``manual`` is the teacher's own hint for a by-hand download (a licence form, say); without it the
    error names the first source's URL.
    """
    if not sources:
        raise CompressorError(f"teacher {teacher!r} has no download source; pass --teacher-weights PATH "
                              "(a local checkpoint) or --teacher-weights random")
    for source in sources:
        hit = cached(source)
        if hit is not None:
            return hit, source
    errors: list[str] = []
    probed: dict[str, bool] = {}
    by_hand = manual or f"download {manual_url(sources[0])} by hand"
    for source in sources:
        base = hf_endpoint() if source.startswith(HF_PREFIX) else source
        host = urlsplit(base).netloc
        if host not in probed:
            probed[host] = reachable(base)
        if not probed[host]:
            errors.append(f"{host} unreachable")
            continue
        try:
            return download(source), source
        except Exception as err:  # HTTP, hub and file-system errors: try the next source
            if _gated(err):
                repo = split_hf(source)[0]
                raise CompressorError(
                    f"the weights of teacher {teacher!r} are gated: accept the licence at "
                    f"{hf_endpoint()}/{repo} with your Hugging Face account, then set HF_TOKEN=<your access "
                    f"token> and retry; or {by_hand} and pass --teacher-weights PATH") from None
            errors.append(f"{source}: {(str(err).splitlines() or [type(err).__name__])[0][:120]}")
    raise CompressorError(
        f"cannot fetch the pretrained weights of teacher {teacher!r} "
        f"({'; '.join(dict.fromkeys(errors))}; nothing cached); "
        f"{by_hand} and pass --teacher-weights PATH, or --teacher-weights random "
        "for a random teacher (smoke tests only)")
