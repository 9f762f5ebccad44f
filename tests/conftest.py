import numpy as np
import pytest
import torch

from supernas import get_space, list_spaces

SPACES = list_spaces()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(params=SPACES)
def space(request):
    return get_space(request.param)
