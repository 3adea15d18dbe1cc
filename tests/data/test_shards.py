"""WebDataset shards as a data SPEC: checked against the `webdataset` package itself, both ways, and in training."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compressor.data.datasets import build_dataset
from compressor.data.loader import ViewDataset
from compressor.data.shard_spec import expand_braces, shard_files
from compressor.data.shard_writer import write_shards
from compressor.data.shards import ShardDataset
from compressor.data.teacher_cache import dataset_identity
from compressor.errors import CompressorError
from tests.conftest import assert_resume_after_step_2_of_4_is_exact

wds = pytest.importorskip("webdataset")


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes × 8 random 16-px PNGs."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for c in ("cat", "dog", "eel"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_written_shards_read_back_by_webdataset(folder: Path, tmp_path: Path) -> None:
    spec = write_shards(folder, tmp_path / "sh", shard_size=10, progress=False)
    assert spec == str(tmp_path / "sh" / "train-{000000..000002}.tar")
    urls = [str(p) for p in shard_files(spec)]
    assert len(urls) == 3 and all(Path(u).is_file() for u in urls)
    classes = json.loads((tmp_path / "sh" / "classes.json").read_text())
    assert classes == ["cat", "dog", "eel"]
    seen = set()
    for sample in wds.WebDataset(urls, shardshuffle=False).decode("pil"):
        src = folder / sample["json"]["path"]
        assert classes[int(sample["cls"])] == src.parent.name
        assert np.array_equal(_pixels(sample["png"]), _pixels(Image.open(src)))
        seen.add(src)
    assert len(seen) == 24
    labels = [json.loads(s["json"])["path"].split("/")[0] for s in wds.WebDataset(urls[:1], shardshuffle=False)]
    assert len(set(labels)) > 1  # shuffled before writing: a shard mixes classes


def test_reads_shards_written_by_webdataset(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (12, 10, 3), dtype=np.uint8) for _ in range(7)]
    with wds.ShardWriter(str(tmp_path / "w-%06d.tar"), maxcount=3) as sink:
        for i, a in enumerate(arrays):
            sink.write({"__key__": f"s{i:04d}", "png": Image.fromarray(a), "cls": i % 2, "txt": "extra"})
    with wds.TarWriter(str(tmp_path / "w-000003.tar")) as sink:
        sink.write({"__key__": "bad", "png": b"not a png", "cls": 1})
    ds = ShardDataset.open(str(tmp_path / "w-{000000..000003}.tar"))
    assert len(ds) == 8 and ds.classes == ["0", "1"]  # no classes.json: the labels name themselves
    for i, a in enumerate(arrays):
        img, label = ds[i]
        assert img is not None and np.array_equal(_pixels(img), a) and label == i % 2
    assert ds[7] == (None, 1) and "w-000003.tar:bad" in caplog.text
    assert ViewDataset(ds, lambda img: {}, seed=0)[7] == {"_skipped": ds.item_name(7)}  # the loader names it


def test_the_sidecar_index_is_used_only_while_it_fits(folder: Path, tmp_path: Path) -> None:
    spec = write_shards(folder, tmp_path / "sh", shard_size=10, progress=False)
    first = ShardDataset.open(spec)
    side = tmp_path / "sh" / "train-000000.tar.idx.json"
    assert side.is_file()
    index = json.loads(side.read_text())
    side.write_text(json.dumps({**index, "samples": [[k, o, n, 0] for k, o, n, _ in index["samples"]]}))  # a lie
    # that still fits: the same size, mtime and recorded SHA-256
    assert [int(x) for x in ShardDataset.open(spec).labels[:10]] == [0] * 10  # used: the shard is not re-read
    for junk in ("{not json", json.dumps({"version": 1, "stamp": [0, 0], "samples": []}), "[1]"):
        side.write_text(junk)
        again = ShardDataset.open(spec)
        assert np.array_equal(again.labels, first.labels) and np.array_equal(again.offsets, first.offsets)


def test_each_dataloader_worker_reads_through_its_own_handle(folder: Path, tmp_path: Path) -> None:
    ds = ShardDataset.open(write_shards(folder, tmp_path / "sh", shard_size=5, progress=False))
    expected = [_pixels(ds[i][0]) for i in range(len(ds))]  # opens handles in this process before the fork
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                         collate_fn=lambda item: (_pixels(item[0]), item[1]))
    got = [px for px, _ in loader]
    assert len(got) == 24 and all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_brace_expansion_like_bash() -> None:
    assert expand_braces("s/t-{000..002}.tar") == ["s/t-000.tar", "s/t-001.tar", "s/t-002.tar"]
    assert expand_braces("{8..10}") == ["8", "9", "10"] and expand_braces("{08..10}") == ["08", "09", "10"]
    assert expand_braces("{a,b}{1..2}") == ["a1", "a2", "b1", "b2"]
    assert expand_braces("{x,y{1,2}}z") == ["xz", "y1z", "y2z"]
    assert expand_braces("keep{this}.tar") == ["keep{this}.tar"]


def test_specs_that_name_no_shard_are_one_line_errors(folder: Path, tmp_path: Path) -> None:
    spec = write_shards(folder, tmp_path / "sh", shard_size=10, progress=False)
    with pytest.raises(CompressorError, match="compress data shard FOLDER OUT") as err:
        build_dataset(str(tmp_path / "nothing-{000000..000009}.tar"))
    assert "\n" not in str(err.value)
    with pytest.raises(CompressorError, match="1 of the 4 shards .* do not exist"):
        build_dataset(spec.replace("000002", "000003"))
    for url in ("https://host/train-{000000..000127}.tar", "s3://bucket/a.tar", "pipe:curl x.tar"):
        with pytest.raises(CompressorError, match="streaming from URLs is not supported"):
            build_dataset(url)
    with pytest.raises(CompressorError, match="compressed shards"):
        build_dataset(str(tmp_path / "a.tar.gz"))
    (tmp_path / "fake.tar").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CompressorError, match="not a readable tar shard"):
        build_dataset(str(tmp_path / "fake.tar"))
    assert len(build_dataset(str(tmp_path / "sh" / "*.tar"))) == 20  # a glob; 80/20 split without val shards


def test_splits_val_shards_beside_or_every_fifth_sample(folder: Path, tmp_path: Path) -> None:
    spec = write_shards(folder, tmp_path / "sh", shard_size=10, progress=False)
    train, val = build_dataset(spec, "train"), build_dataset(spec, "val")
    assert (len(train), len(val)) == (20, 4) and train.classes == val.classes == ["cat", "dog", "eel"]
    bank = {train.item_name(i) for i in range(len(train))}
    assert not bank & {val.item_name(i) for i in range(len(val))}  # eval queries are never in the kNN bank
    for i in range(1, 8):  # val shards beside the train shards (written from a smaller folder)
        (folder / "eel" / f"{i}.png").unlink()
    write_shards(folder, tmp_path / "sh", shard_size=10, prefix="val", progress=False)
    train, val = build_dataset(spec, "train"), build_dataset(spec, "val")
    assert (len(train), len(val)) == (24, 17) and val.shards[0].name == "val-000000.tar"


def test_dataset_identity_follows_the_shards(folder: Path, tmp_path: Path) -> None:
    spec = write_shards(folder, tmp_path / "sh", shard_size=10, progress=False)
    before = dataset_identity(build_dataset(spec))
    assert dataset_identity(build_dataset(spec)) == before
    assert dataset_identity(build_dataset(spec, "val")) != before
    shard = tmp_path / "sh" / "train-000001.tar"
    st = shard.stat()
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched
    assert dataset_identity(build_dataset(spec)) != before


def test_data_shard_command(cli, folder: Path, tmp_path: Path) -> None:
    code, out, err = cli("data", "shard", folder, tmp_path / "out", "--shard-size", "7", "--prefix", "val")
    assert code == 0, err
    spec = str(tmp_path / "out" / "val-{000000..000003}.tar")
    assert f"--data '{spec}'" in out
    assert len(ShardDataset.open(spec)) == 24
    code, out, err = cli("data", "shard", tmp_path / "missing", tmp_path / "o2")
    assert code != 0 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli("data", "shard", empty, tmp_path / "o3")
    assert code != 0 and "no images found" in err and err.count("\n") == 1


def _cfg(data: str, out: Path, **kw):
    from compressor.engine.config import TrainConfig

    base = dict(student="resnet10t", recipe="simclr", data=data, batch_size=4, image_size=16, max_steps=4,
                checkpoint_every=2, keep_checkpoints=2, out=str(out), seed=1,
                recipe_config={"projector_dims": [32, 16]})
    return TrainConfig(**{**base, **kw})


def test_distill_on_shards_resumes_exactly(folder: Path, tmp_path: Path) -> None:
    spec = write_shards(folder, tmp_path / "sh", shard_size=10, progress=False)  # 20 training images
    assert_resume_after_step_2_of_4_is_exact(lambda out, **kw: _cfg(spec, out, **kw), tmp_path)

