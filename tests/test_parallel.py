"""The process pool behind feature extraction and the corpus scans (`ser.parallel`)."""

from __future__ import annotations

import gc
import weakref

import pytest
from conftest import write_clip

from ser.features import DEFAULT, SPACES
from ser.parallel import WINDOW, map_unordered
from ser.store import _extract_task

pytestmark = pytest.mark.usefixtures("every_core")


def test_pool_lets_go_of_results_the_caller_has_taken(tmp_path):
    """Regression: every chunk was submitted at once and every future kept, so each
    clip's features stayed in memory a second time, beside the caller's copy, until the
    last clip arrived. Training the general recipe on four corpora (GBs of features) was
    killed for memory on a 24 GiB machine. Now a result the caller has let go of is freed
    while later clips still arrive: at most the chunks in flight are held."""
    clips = [write_clip(tmp_path / f"clip{i}.wav", seconds=0.4, freq=150 + 10 * i)
             for i in range(4)]
    tasks = [(j, str(clips[j % 4]), DEFAULT, SPACES, True, [], "fixed") for j in range(48)]
    workers, chunksize = 2, 2
    refs, most_alive, seen = [], 0, set()
    for j, result in map_unordered(_extract_task, tasks, workers=workers,
                                   chunksize=chunksize):
        assert not isinstance(result, str), result
        assert result["plain"]["fs2"].shape == DEFAULT.input_shape("fs2")[1:]
        seen.add(j)
        refs.append(weakref.ref(result["plain"]["fs2"]))
        del result
        gc.collect()
        most_alive = max(most_alive, sum(r() is not None for r in refs))
    assert seen == set(range(48))
    assert most_alive <= (WINDOW * workers + 1) * chunksize, most_alive

