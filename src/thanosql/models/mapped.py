"""A stored model read the cheap way: built without its random initialisation, then given the
tensors of its weights file memory-mapped (``torch.load(mmap=True)``, ``assign=True``).

    >>> with without_random_init():  # doctest: +SKIP
    ...     model = open_clip.create_model("ViT-B-32")
    >>> load_mapped(model, folder / "weights.pt")  # doctest: +SKIP

A plain load fills every parameter with random numbers, reads the file into new memory, then
copies it into the parameters: it writes the model's size in fresh pages three times. Here the
parameters are never written (their memory is never touched, and freed when replaced) and the
weights are the file's pages in the page cache, shared by every process that maps the same file:
the Ray actors of one CONVERT on a node, and the notebooks of one machine that use the model. Loading a stored
ViT-B-32 on one thread of the 2-core machine, its modules imported, took 1.2 s in one run and
4.9 s in another before (7.1 and 7.2 s for two processes at once, as two Ray actors do), and 0.22
to 0.29 s after (2026-12-03).

Only the store's own files are read so: each is the ``state_dict()`` of the very architecture it
is loaded into (strict: a missing or unexpected weight fails), so every parameter is replaced.
The store never rewrites a file in place (a new model is a new folder, renamed into place), so a
mapped file never changes under the model that maps it. Writes to the weights (training) copy the
pages they touch, never the file.
"""

from __future__ import annotations

import os
from contextlib import contextmanager


def _random_fills():
    """The functions that fill a tensor with random numbers: nn.init's random initialisers, which
    reach the mode as themselves, and the tensor methods they and modules call."""
    import torch

    init = torch.nn.init
    return frozenset(
        {
            init.uniform_,
            init.normal_,
            init.trunc_normal_,
            init.kaiming_uniform_,
            init.kaiming_normal_,
            init.xavier_uniform_,
            init.xavier_normal_,
            init.orthogonal_,
            init.sparse_,
            torch.Tensor.uniform_,
            torch.Tensor.normal_,
        }
    )


@contextmanager
def without_random_init():
    """Build modules in the block without filling their parameters with random numbers (they keep
    the uninitialised memory ``torch.empty`` gives): for a model whose every weight is loaded next.
    Only this thread is affected (torch function modes are per thread); other computations of the
    block, such as the attention masks models compute for themselves, run as usual."""
    from torch.overrides import TorchFunctionMode

    fills = _random_fills()

    class SkipRandomFills(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in fills:
                return args[0] if args else kwargs["tensor"]
            return func(*args, **(kwargs or {}))

    with SkipRandomFills():
        yield


def load_mapped(module, path: str | os.PathLike) -> None:
    """Give ``module`` the tensors of the state_dict file ``path``, memory-mapped (strict: the file
    must hold exactly the module's weights). Raises what torch raises for a damaged file or a
    mismatch (RuntimeError, OSError, ...); the caller names the model."""
    import torch

    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True, mmap=True)
    module.load_state_dict(state, strict=True, assign=True)
