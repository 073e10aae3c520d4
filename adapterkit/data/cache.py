"""Tokenized splits cached on disk by ``datasets``' fingerprints, so the runs of ``compare`` and ``tune`` (each
its own process) tokenize a split once: the cache file is named by the fingerprint of the rows and of what
the tokens depend on (tokenizer, template, options, the tokenizing code), in ``$ADAPTERKIT_CACHE/tokenized``
(``~/.cache/adapterkit/tokenized``; safe to delete). ``ADAPTERKIT_TOKEN_CACHE=0`` turns it off.
"""

from __future__ import annotations

import os

from ..assets import cache_dir


def cached_map(dataset, function, key: list, **map_kwargs):
    """``dataset.map(function, **map_kwargs)``, read back from the cache when the same rows were mapped with
    the same ``key`` before (``key`` must name everything ``function``'s output depends on)."""
    if os.environ.get("ADAPTERKIT_TOKEN_CACHE", "1") == "0":
        return dataset.map(function, **map_kwargs)
    from datasets.fingerprint import Hasher

    fingerprint = Hasher.hash([dataset._fingerprint, *key])
    folder = cache_dir() / "tokenized"
    folder.mkdir(parents=True, exist_ok=True)
    return dataset.map(function, cache_file_name=str(folder / f"{fingerprint}.arrow"), new_fingerprint=fingerprint,
                       load_from_cache_file=True, **map_kwargs)
