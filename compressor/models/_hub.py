"""Fetching a teacher's pretrained file from the Hugging Face hub or an official URL, failing fast offline.

huggingface_hub retries an unreachable host for ~25 s per file, so before any download we probe the
host (``HF_ENDPOINT`` when set, e.g. a mirror; else huggingface.co) or the proxy with a 3 s connect;
when that fails, or ``HF_HUB_OFFLINE=1`` is set, only the local caches are looked at (the hub cache
and torch hub's ``checkpoints/``). ``HF_ENDPOINT`` is read at call time (huggingface_hub reads it once,
at import). A gated repository (DINOv3) fails with a message naming ``HF_TOKEN`` and the manual
download; every other failure names the repository and file to fetch by hand. Downloaded files are
read like ``--teacher-weights`` files (:func:`~compressor.models.checkpoints.read_state_dict`).

A whole model named as timm names it, ``hf-hub:org/name`` (``timm.create_model("hf-hub:org/name")``),
resolves through :func:`hub_model` to its ``config.json`` (the timm architecture, its ``model_args`` and
``pretrained_cfg``) and weights file, on the same terms: the cache alone when offline or unreachable, with
one line naming the repository and the cache folder when they are not there. The cache folder is read
from the environment at call time too (``HF_HUB_CACHE``, else ``HF_HOME/hub``), and passed to
huggingface_hub explicitly.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from compressor.errors import CompressorError

HF_PREFIX = "hf-hub:"
PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"
CONFIG_FILE = "config.json"
MODEL_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's push_to_hub uploads, preferred first


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
    """``hf-hub:org/repo/file`` → ``("org/repo", "file")`` (``org/repo@rev`` keeps its revision)."""
    repo, _, filename = source[len(HF_PREFIX):].rpartition("/")
    return repo, filename


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment names it now: ``HF_HUB_CACHE`` (or the legacy
    ``HUGGINGFACE_HUB_CACHE``), else ``HF_HOME/hub``; with none of them set, huggingface_hub's own setting
    (``~/.cache/huggingface/hub``, or whatever a program set ``huggingface_hub.constants.HF_HUB_CACHE`` to).

    huggingface_hub reads the variables once, at import; reading them here means a cache named later (a
    test, a notebook) is the one looked in, and the error messages name the folder really searched.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.path.expanduser(os.environ[var])))
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.path.expanduser(os.environ["HF_HOME"]))) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _repo_revision(repo: str) -> tuple[str, str | None]:
    """``org/name@rev`` → ``("org/name", "rev")``; no ``@`` → the default branch (``None``)."""
    name, _, rev = repo.partition("@")
    return name, rev or None


def manual_url(source: str) -> str:
    """Where a browser (or curl) gets ``source`` by hand."""
    if source.startswith(HF_PREFIX):
        repo, filename = split_hf(source)
        name, rev = _repo_revision(repo)
        return f"{hf_endpoint()}/{name}/resolve/{rev or 'main'}/{filename}"
    return source


def _url_cache(url: str) -> Path:
    import torch  # here, not at the top: the zoo's specs name their sources without loading torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlsplit(url).path)


def cached(source: str) -> Path | None:
    """The local copy of ``source`` if a previous download left one."""
    if source.startswith(HF_PREFIX):
        from huggingface_hub import try_to_load_from_cache

        repo, filename = split_hf(source)
        name, rev = _repo_revision(repo)
        hit = try_to_load_from_cache(name, filename, cache_dir=hub_cache_dir(), revision=rev)
        return Path(hit) if isinstance(hit, str) else None
    path = _url_cache(source)
    return path if path.is_file() else None


def download(source: str) -> Path:
    """Download ``source`` (``hf-hub:<repo>/<file>`` or an https URL) into the usual cache."""
    if source.startswith(HF_PREFIX):
        from huggingface_hub import hf_hub_download

        repo, filename = split_hf(source)
        name, rev = _repo_revision(repo)
        return Path(hf_hub_download(repo_id=name, filename=filename, revision=rev, cache_dir=hub_cache_dir(),
                                    endpoint=hf_endpoint()))
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
    where = f" in {hub_cache_dir()}" if any(s.startswith(HF_PREFIX) for s in sources) else ""
    raise CompressorError(
        f"cannot fetch the pretrained weights of teacher {teacher!r} "
        f"({'; '.join(dict.fromkeys(errors))}; nothing cached{where}); "
        f"{by_hand} and pass --teacher-weights PATH, or --teacher-weights random "
        "for a random teacher (smoke tests only)")


# -- whole models on the hub: ``hf-hub:org/name`` as timm spells it -------------------------------------
def is_hub_model(name: str) -> bool:
    """Whether ``name`` is a hub model, ``hf-hub:org/name`` (not a timm architecture)."""
    return name.startswith(HF_PREFIX)


@dataclass(frozen=True)
class HubModel:
    """A timm model repository resolved to local files: its ``config.json`` and (when asked) its weights.

    ``name`` is what the user wrote (``hf-hub:org/name``); ``snapshot`` the cache folder of the files, named
    by the revision (commit) they come from, which is recorded with the run.
    """

    name: str
    repo: str
    snapshot: Path
    config: dict[str, Any] = field(hash=False)
    weights: Path | None = None

    @property
    def revision(self) -> str:
        return self.snapshot.name

    @property
    def arch(self) -> str:
        """The timm architecture ``config.json`` names (``resnet18``, ``vit_small_patch16_224`` ...)."""
        return str(self.config["architecture"])

    @property
    def model_args(self) -> dict[str, Any]:
        """The extra arguments timm builds the architecture with (``img_size`` of a ViT, say)."""
        args = self.config.get("model_args") or {}
        return dict(args) if isinstance(args, dict) else {}

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """Input size, mean/std, classifier ...: the ``pretrained_cfg`` block, or the whole file in timm's
        older single-dict layout."""
        block = self.config.get("pretrained_cfg")
        if isinstance(block, dict):
            return dict(block)
        return {k: v for k, v in self.config.items() if k not in ("architecture", "model_args")}


_RESOLVED: dict[tuple[str, str, bool, bool], HubModel] = {}  # one resolution per process (and cache, mode)


def _offline_reason() -> str | None:
    """Why only the cache may be read (``HF_HUB_OFFLINE`` set, the hub unreachable), or ``None`` when online."""
    if _offline_env():
        return "HF_HUB_OFFLINE is set"
    endpoint = hf_endpoint()
    return None if reachable(endpoint) else f"{urlsplit(endpoint).netloc} unreachable"


def hub_model(name: str, *, weights: bool = True) -> HubModel:
    """Resolve ``hf-hub:org/name[@revision]`` to local files, from the cache when offline.

    Offline (``HF_HUB_OFFLINE=1``, or the hub unreachable within :data:`PROBE_TIMEOUT_S`) only the local
    cache is read, and a missing file is one line naming the repository and the cache folder. Online,
    huggingface_hub downloads what the cache lacks (or re-uses it). ``weights=False`` resolves
    ``config.json`` alone (rebuilding a saved run's architecture needs nothing more).
    """
    repo_rev = name[len(HF_PREFIX):]
    repo, rev = _repo_revision(repo_rev)
    org, _, short = repo.partition("/")
    if not org or not short or "/" in short:
        raise CompressorError(f"{name!r} is not a hub model name; write hf-hub:ORG/NAME (as timm.create_model "
                              "takes it), e.g. hf-hub:timm/resnet18.a1_in1k")
    cache = hub_cache_dir()
    key = (name, str(cache), _offline_env(), weights)
    hit = _RESOLVED.get(key)
    if hit is None or not (hit.snapshot / CONFIG_FILE).is_file():  # probe once per model, not at every rebuild
        reason = _offline_reason()
        files = (CONFIG_FILE, *MODEL_FILES) if weights else (CONFIG_FILE,)
        found = _from_cache(repo, rev, cache, files) if reason else _download(repo, rev, cache, files)
        missing = CONFIG_FILE if CONFIG_FILE not in found else " or ".join(MODEL_FILES)
        if reason is None and weights and len(found) < 2:
            raise CompressorError(f"{name} holds no {missing} (timm's push_to_hub uploads model.safetensors); "
                                  "check the name")
        if CONFIG_FILE not in found or (weights and len(found) < 2):
            folder = cache / f"models--{repo.replace('/', '--')}"
            raise CompressorError(
                f"{name}: {missing} is not in the Hugging Face cache {folder} ({reason}); on a machine that "
                f"reaches the hub run `hf download {repo}{f' --revision {rev}' if rev else ''}` and copy that "
                "folder here (or point HF_HUB_CACHE at a cache that holds it)")
        config = _read_config(found[CONFIG_FILE], name)
        path = next((found[f] for f in MODEL_FILES if f in found), None)
        _RESOLVED[key] = HubModel(name, repo, found[CONFIG_FILE].parent, config, path)
    return _RESOLVED[key]


def _from_cache(repo: str, rev: str | None, cache: Path, files: tuple[str, ...]) -> dict[str, Path]:
    from huggingface_hub import try_to_load_from_cache

    found: dict[str, Path] = {}
    for f in files:
        hit = try_to_load_from_cache(repo, f, cache_dir=cache, revision=rev)
        if isinstance(hit, str) and (f == CONFIG_FILE or not any(m in found for m in MODEL_FILES)):
            found[f] = Path(hit)
    return found


def _download(repo: str, rev: str | None, cache: Path, files: tuple[str, ...]) -> dict[str, Path]:
    """Download ``config.json`` and the first weights file the repository has; a missing repository or
    config is one line, a gated one names ``HF_TOKEN``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    found: dict[str, Path] = {}
    for f in files:
        if f != CONFIG_FILE and any(m in found for m in MODEL_FILES):
            break
        try:
            found[f] = Path(hf_hub_download(repo_id=repo, filename=f, revision=rev, cache_dir=cache,
                                            endpoint=hf_endpoint()))
        except EntryNotFoundError:
            if f == CONFIG_FILE:
                raise CompressorError(f"{HF_PREFIX}{repo} has no {CONFIG_FILE}: it is not a timm model repository "
                                      "(timm's push_to_hub writes one); check the name") from None
        except Exception as err:  # HTTP, hub and file-system errors
            if _gated(err):
                raise CompressorError(f"{HF_PREFIX}{repo} is gated: accept its licence at {hf_endpoint()}/{repo}, "
                                      "then set HF_TOKEN=<your access token> and retry") from None
            first = (str(err).splitlines() or [type(err).__name__])[0][:160]
            raise CompressorError(f"cannot fetch {f} of {HF_PREFIX}{repo} from {hf_endpoint()} ({first}); check "
                                  "the name (timm's form: hf-hub:org/name) or set HF_HUB_OFFLINE=1 to use the "
                                  f"cache {cache} alone") from None
    return found


def _read_config(path: Path, name: str) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CompressorError(f"{name}: cannot read {path} ({err}); delete it from the cache and fetch it "
                              "again") from None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise CompressorError(f"{name}: {path} names no 'architecture': not a timm model config (timm's "
                              "push_to_hub writes one)")
    return config
