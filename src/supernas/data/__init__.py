"""Datasets for supernet training and search, read from standard layouts at a path the user gives.

    from supernas.data import DataConfig, build_datasets, build_loader, set_epoch
    ds = build_datasets(DataConfig(path="~/data/cifar10", search_size=5000))
    loader = build_loader(ds.train, batch_size=64, train=True)

Layouts (detected, or forced with `format`): image folders (root/train/<class>/, root/val|test/<class>/),
CIFAR-10/100 python batches, MNIST idx files, and scikit-learn's built-in digits (no path). Every
sample of a dataset has the same shape, 3 x image_size x image_size; training code resizes batches
per architecture on the device.
"""
from .build import Datasets, build_datasets
from .config import DataConfig
from .datasets import View
from .formats import detect_format
from .loader import build_loader, set_epoch

__all__ = ["DataConfig", "Datasets", "View", "build_datasets", "build_loader", "detect_format", "set_epoch"]
