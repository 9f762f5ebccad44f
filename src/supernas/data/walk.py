"""Folder trees of images walked safely: a symbolic link that leads back into a folder it sits in
(a loop) is refused, naming the link, where following it made torchvision's walk run forever."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import SupernasError


def refuse_symlink_loops(root: "str | Path") -> None:
    """Walk `root` as the dataset readers do (following links) and raise a SupernasError at the
    first link to a folder that is `root` itself or one above the link (the walk would never end)."""
    for folder, dirs, _ in os.walk(root, followlinks=True):
        here = os.path.realpath(folder)
        for name in dirs:
            link = os.path.join(folder, name)
            if not os.path.islink(link):
                continue
            target = os.path.realpath(link)
            if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
                raise SupernasError(f"'{link}' is a symbolic link to '{target}', a folder it sits in: reading "
                                    "the dataset would go round in a loop; remove the link")
