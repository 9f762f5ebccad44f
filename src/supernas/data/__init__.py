"""Datasets for supernet training and search, read from standard layouts at a path the user gives.

    from supernas.data import DataConfig, build_datasets
    ds = build_datasets(DataConfig(path="~/data/cifar10", search_size=5000))
    x, y = ds.train[0]

Layouts (detected, or forced with `format`): image folders (root/train/<class>/, root/val|test/<class>/),
CIFAR-10/100 python batches, MNIST idx files, and scikit-learn's built-in digits (no path). Every
sample of a dataset has the same shape, 3 x image_size x image_size; training code resizes batches
per architecture on the device.
"""
from .build import Datasets, build_datasets
from .config import DataConfig
from .datasets import View
from .formats import detect_format

__all__ = ["DataConfig", "Datasets", "View", "build_datasets", "detect_format"]
