import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from supernas import SupernasError
from supernas.data import DataConfig, build_datasets, detect_format

CIFAR_JPG = Path("/work/shared/data/cifar10-jpg.tar.gz")


# ---- synthetic data in each layout ------------------------------------------------------------

def make_imagefolder(root, classes=("cat", "dog", "owl"), train=6, val=2, size=(20, 20), val_dir="val"):
    rng = np.random.default_rng(0)
    for split, n in (("train", train), (val_dir, val)):
        if split is None:
            continue
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                image = Image.fromarray(pixels)
                if i == 0:
                    image = image.convert("L")  # a grey file must still load as 3 channels
                image.save(root / split / c / f"{i}.png")
    return root


def cifar_batch(n, label_key, seed, bytes_keys=False):
    rng = np.random.default_rng(seed)
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             label_key: [int(v) for v in rng.integers(0, 10, n)]}
    return {k.encode(): v for k, v in batch.items()} if bytes_keys else batch


def make_cifar10(root, n=8):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        # Keys as bytes in one batch: what a Python 2 pickle read with encoding='bytes' looks like.
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(cifar_batch(n, "labels", i, bytes_keys=i == 2)))
    (folder / "test_batch").write_bytes(pickle.dumps(cifar_batch(n, "labels", 0)))
    return folder


def make_cifar100(root, n=20):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, seed in (("train", 1), ("test", 2)):
        (folder / name).write_bytes(pickle.dumps(cifar_batch(n, "fine_labels", seed)))
    names = [f"c{i}" for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": []}))
    return folder


def idx_bytes(array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_mnist(root, n_train=30, n_test=10):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = np.arange(n) % 10
    for name, array in arrays.items():
        if name.startswith("t10k-images"):  # one gzipped, as the torchvision download leaves them
            (raw / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
        else:
            (raw / name).write_bytes(idx_bytes(array))
    return raw, arrays


def raw_pixels(x, ds):
    """Undo the normalisation of a transformed image: back to a uint8 CHW tensor."""
    mean, std = torch.tensor(ds.mean)[:, None, None], torch.tensor(ds.std)[:, None, None]
    return torch.round((x * std + mean) * 255).to(torch.uint8)


# ---- config -----------------------------------------------------------------------------------

def test_config_from_dict_rejects_unknown_keys_and_lists_allowed():
    with pytest.raises(SupernasError, match="unknown config key 'data.serach_size'; did you mean 'data.search_size'"):
        DataConfig.from_dict({"serach_size": 10})
    cfg = DataConfig.from_dict({"path": "x", "search_size": 0.1, "mean": [0.5, 0.5, 0.5]})
    assert cfg.search_size == 0.1 and cfg.mean == [0.5, 0.5, 0.5]
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    assert DataConfig.from_dict(None) == DataConfig()


@pytest.mark.parametrize("values, word", [
    ({"format": "tfrecord"}, "format"), ({"search_size": 1.5}, "search_size"),
    ({"search_size": -3}, "search_size"), ({"image_size": 0}, "image_size"), ({"train_crop": "center"}, "train_crop"),
    ({"autoaugment": "rand"}, "autoaugment"), ({"std": [1, 0, 1]}, "std"), ({"mean": [0.5]}, "mean"),
    ({"train_subset": 2.5}, "train_subset"), ({"mean": "abc"}, "mean"), ({"search_size": True}, "search_size"),
    ({"val_size": 1.0}, "val_size"), ({"path": " "}, "path"), ({"on_bad_image": "ignore"}, "on_bad_image"),
])
def test_config_rejects_bad_values_naming_the_key(values, word):
    with pytest.raises(SupernasError, match=f"data.{word}"):
        DataConfig.from_dict(values)


def test_a_config_built_in_code_is_checked_before_it_reads_anything(tmp_path):
    # the Python API's DataConfig(...) goes through the same rules as a config's data section
    with pytest.raises(SupernasError, match=r"data.search_size=1.5 is out of range"):
        build_datasets(DataConfig(path=str(tmp_path), search_size=1.5))
    with pytest.raises(SupernasError, match="data.train_crop='center' is not allowed: one of auto, resized, pad"):
        build_datasets(DataConfig(train_crop="center"))  # type: ignore[arg-type]


# ---- image folders ----------------------------------------------------------------------------

def test_imagefolder_small_images(tmp_path):
    root = make_imagefolder(tmp_path / "data")
    assert detect_format(root) == "imagefolder"
    ds = build_datasets(DataConfig(path=str(root)))
    assert ds.format == "imagefolder" and ds.classes == ["cat", "dog", "owl"] and ds.num_classes == 3
    assert (len(ds.train), len(ds.val)) == (18, 6) and ds.search is None
    assert ds.recipe.small and ds.recipe.train_crop == "pad" and ds.recipe.flip and ds.image_size == 20
    assert ds.mean == (0.485, 0.456, 0.406)  # ImageNet statistics by default
    for split in (ds.train, ds.val):
        x, y = split[0]
        assert x.shape == (3, 20, 20) and x.dtype == torch.float32 and isinstance(y, int)
    assert sorted(ds.val.targets.tolist()) == [0, 0, 1, 1, 2, 2]


def test_imagefolder_large_non_square_images_come_out_at_one_size(tmp_path):
    root = make_imagefolder(tmp_path, classes=("a", "b"), train=2, val=1, size=(100, 80), val_dir="test")
    ds = build_datasets({"path": str(root), "image_size": 48})
    assert not ds.recipe.small and ds.recipe.train_crop == "resized"
    assert {tuple(ds.train[i][0].shape) for i in range(4)} == {(3, 48, 48)}
    assert ds.val[0][0].shape == (3, 48, 48)
    ds = build_datasets({"path": str(root), "image_size": 48, "train_crop": "pad"})
    assert ds.train[0][0].shape == (3, 48, 48)


def test_imagefolder_without_val_carves_one(tmp_path):
    root = make_imagefolder(tmp_path, train=10, val_dir=None)
    ds = build_datasets({"path": str(root)})
    assert (len(ds.train), len(ds.val)) == (24, 6)
    assert np.bincount(ds.val.targets).tolist() == [2, 2, 2]  # stratified
    assert not set(ds.train.indices) & set(ds.val.indices)
    assert len(build_datasets({"path": str(root), "val_size": 9}).val) == 9


def test_imagefolder_val_with_unknown_class_is_an_error(tmp_path):
    root = make_imagefolder(tmp_path)
    (root / "val" / "yak").mkdir()
    Image.new("RGB", (20, 20)).save(root / "val" / "yak" / "0.png")
    with pytest.raises(SupernasError, match=r"val.*yak"):
        build_datasets({"path": str(root)})


def test_imagefolder_tiny_imagenet_val_annotations(tmp_path):
    root = make_imagefolder(tmp_path, classes=("n01", "n02"), val_dir=None)
    (root / "val" / "images").mkdir(parents=True)
    for i, wnid in enumerate(("n02", "n01", "n02")):
        Image.new("RGB", (20, 20)).save(root / "val" / "images" / f"val_{i}.JPEG")
    (root / "val" / "val_annotations.txt").write_text(
        "".join(f"val_{i}.JPEG\t{w}\t0\t0\t10\t10\n" for i, w in enumerate(("n02", "n01", "n02"))))
    ds = build_datasets({"path": str(root)})
    assert ds.val.targets.tolist() == [1, 0, 1] and ds.val[2][0].shape == (3, 20, 20)


def test_official_val_and_val_size_conflict(tmp_path):
    root = make_imagefolder(tmp_path)
    with pytest.raises(SupernasError, match="official val split.*remove"):
        build_datasets({"path": str(root), "val_size": 0.1})


# ---- CIFAR ------------------------------------------------------------------------------------

def test_cifar10_batches_from_parent_or_folder(tmp_path):
    folder = make_cifar10(tmp_path)
    assert detect_format(tmp_path) == detect_format(folder) == "cifar10"
    ds = build_datasets({"path": str(tmp_path)})
    assert ds.format == "cifar10" and ds.num_classes == 10 and ds.classes[0] == "airplane"
    assert (len(ds.train), len(ds.val)) == (40, 8) and ds.image_size == 32
    assert ds.train.source.images.dtype == torch.uint8 and ds.train.source.images.shape == (40, 3, 32, 32)
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.recipe.flip and ds.recipe.pad == 4
    # Eval at the native size is exact: the pixels of the pickle in CHW order, and its labels.
    batch = pickle.loads((folder / "test_batch").read_bytes())
    x, y = ds.val[3]
    assert torch.equal(raw_pixels(x, ds), torch.from_numpy(batch["data"][3].reshape(3, 32, 32)))
    assert y == batch["labels"][3]
    assert ds.train.targets.tolist()[8:16] == pickle.loads((folder / "data_batch_2").read_bytes())[b"labels"]


def test_cifar100_fine_labels_and_names(tmp_path):
    folder = make_cifar100(tmp_path)
    assert detect_format(folder) == "cifar100"
    ds = build_datasets({"path": str(tmp_path), "image_size": 24})
    assert ds.num_classes == 100 and ds.classes[:2] == ["c0", "c1"] and ds.mean[0] == 0.5071
    assert ds.train[0][0].shape == ds.val[0][0].shape == (3, 24, 24)
    assert ds.val.targets.tolist() == pickle.loads((folder / "test").read_bytes())["fine_labels"]


def test_malformed_cifar_batch_names_the_file(tmp_path):
    folder = make_cifar10(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({"pixels": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(SupernasError, match="data_batch_3.*not a CIFAR batch"):
        build_datasets({"path": str(folder)})
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(SupernasError, match="data_batch_3"):
        build_datasets({"path": str(folder)})
    (folder / "data_batch_3").unlink()
    with pytest.raises(SupernasError, match="data_batch_3.*missing"):
        build_datasets({"path": str(folder)})


# ---- MNIST ------------------------------------------------------------------------------------

def test_mnist_idx_files_plain_and_gz(tmp_path):
    raw, arrays = make_mnist(tmp_path)
    for root in (tmp_path, tmp_path / "MNIST", raw):
        assert detect_format(root) == "mnist"
    ds = build_datasets({"path": str(raw)})
    assert (len(ds.train), len(ds.val), ds.num_classes, ds.image_size) == (30, 10, 10, 28)
    assert not ds.recipe.flip and ds.mean == (0.1307,) * 3
    x, y = ds.val[4]
    grey = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][4])
    assert torch.equal(raw_pixels(x, ds), grey.expand(3, 28, 28)) and y == 4
    assert ds.train.targets.tolist() == (np.arange(30) % 10).tolist()


def test_mnist_bad_header_names_the_file(tmp_path):
    raw, _ = make_mnist(tmp_path)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(SupernasError, match="train-labels-idx1-ubyte.*not an idx file"):
        build_datasets({"path": str(tmp_path)})


# ---- detection and path errors ----------------------------------------------------------------

def test_missing_path_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SupernasError, match=f"'{missing}' does not exist.*cifar-10-batches-py"):
        build_datasets({"path": str(missing)})


def test_empty_folder_and_unknown_layout_are_errors_naming_them(tmp_path):
    with pytest.raises(SupernasError, match=f"no dataset found at '{tmp_path}' \\(it is empty\\).*train/<class>"):
        detect_format(tmp_path)
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "images").mkdir()
    with pytest.raises(SupernasError, match="it holds images/, notes.txt.*MNIST/raw"):
        build_datasets({"path": str(tmp_path)})
    with pytest.raises(SupernasError, match="is a file"):
        detect_format(tmp_path / "notes.txt")


def test_forced_format_that_does_not_match_names_path_and_layout(tmp_path):
    make_cifar10(tmp_path)
    with pytest.raises(SupernasError, match=f"'{tmp_path}' is not in the mnist layout.*MNIST/raw"):
        build_datasets({"path": str(tmp_path), "format": "mnist"})
    with pytest.raises(SupernasError, match="built in and takes no path"):
        build_datasets({"path": str(tmp_path), "format": "digits"})
    with pytest.raises(SupernasError, match="needs a path"):
        build_datasets({"format": "cifar10"})


def test_empty_class_folders_are_an_error(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(SupernasError, match=f"no images.*'{tmp_path / 'train'}'"):
        build_datasets({"path": str(tmp_path)})


# ---- digits, splits and subsets ---------------------------------------------------------------

def test_digits_builtin():
    assert detect_format(None) == detect_format("digits") == "digits"
    ds = build_datasets({"path": "digits", "image_size": 16})
    assert ds.num_classes == 10 and (len(ds.train), len(ds.val)) == (1438, 359)
    assert not ds.recipe.flip and ds.train.source.images.max() == 255
    for split in (ds.train, ds.val):
        assert split[5][0].shape == (3, 16, 16)
    assert build_datasets(None).image_size == 8


def test_search_split_is_disjoint_deterministic_and_stratified():
    a = build_datasets({"search_size": 300, "seed": 1})
    b = build_datasets({"search_size": 300, "seed": 1})
    c = build_datasets({"search_size": 300, "seed": 2})
    assert len(a.search) == 300 and len(a.train) == 1438 - 300
    assert not set(a.search.indices) & set(a.train.indices)
    assert not set(a.search.indices) & set(a.val.indices) and not set(a.train.indices) & set(a.val.indices)
    assert np.array_equal(a.search.indices, b.search.indices) and np.array_equal(a.train.indices, b.train.indices)
    assert not np.array_equal(a.search.indices, c.search.indices)
    assert np.array_equal(a.val.indices, c.val.indices)  # a carved val split doesn't move with the seed
    assert np.bincount(a.search.targets).min() >= 28  # about 30 per class
    # Search is train images through the eval transforms: no randomness.
    assert torch.equal(a.search[0][0], a.search[0][0])
    assert len(build_datasets({"search_size": 0.25}).search) == round(0.25 * 1438)


def test_search_or_val_size_out_of_range_is_an_error():
    with pytest.raises(SupernasError, match="search_size.*leaves no training images"):
        build_datasets({"search_size": 5000})
    with pytest.raises(SupernasError, match="search_size.*gives no images"):
        build_datasets({"search_size": 0.0001})
    with pytest.raises(SupernasError, match="val_size.*gives no images"):
        build_datasets({"val_size": 0})


def test_subsets_are_seeded_and_sized():
    a = build_datasets({"train_subset": 50, "val_subset": 20, "search_size": 100, "seed": 3})
    b = build_datasets({"train_subset": 50, "val_subset": 20, "search_size": 100, "seed": 3})
    assert (len(a.train), len(a.val), len(a.search)) == (50, 20, 100)
    assert np.array_equal(a.train.indices, b.train.indices) and np.array_equal(a.val.indices, b.val.indices)
    assert not set(a.train.indices) & set(a.search.indices)
    assert len(build_datasets({"train_subset": 10 ** 6}).train) == 1438  # larger than the split: all of it


def test_autoaugment_and_calibration_view():
    ds = build_datasets({"image_size": 32, "autoaugment": True})
    assert ds.recipe.autoaugment == "svhn"
    assert ds.calibration is not ds.train and np.array_equal(ds.calibration.indices, ds.train.indices)
    assert "AutoAugment" in repr(ds.train.transform) and "AutoAugment" not in repr(ds.calibration.transform)
    assert ds.train[0][0].shape == ds.calibration[0][0].shape == (3, 32, 32)
    plain = build_datasets(None)
    assert plain.calibration is plain.train  # without AutoAugment the train view serves as it is


# ---- real data (slow) -------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not CIFAR_JPG.exists(), reason=f"{CIFAR_JPG} is not here")
def test_real_cifar10_jpeg_folders(tmp_path):
    with tarfile.open(CIFAR_JPG) as tar:
        # The "data" filter refuses unsafe members; Pythons before 3.11.4 lack it (and the warning).
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    ds = build_datasets({"path": str(tmp_path), "search_size": 5000})
    assert ds.format == "imagefolder" and ds.num_classes == 10
    assert (len(ds.train) + len(ds.search), len(ds.val)) == (50000, 10000)
    assert np.bincount(ds.search.targets).tolist() == [500] * 10
    assert ds.train[0][0].shape == ds.val[0][0].shape == (3, 32, 32)
