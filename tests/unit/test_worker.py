"""The worker's process set-up that needs no broker (the pipeline itself: tests/integration)."""
from __future__ import annotations

import gc

from streamer.app.worker import Worker
from streamer.settings import Settings


def test_ready_worker_freezes_its_start_up_objects():
    """Once serving, the start-up objects are out of the collector's generations: a full collection
    scans only what came later (no ~80 ms gen-2 stall of the pipeline)."""
    gc.unfreeze()
    try:
        w = Worker(Settings())
        assert gc.get_freeze_count() == 0
        w.on_ready()
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        assert len(gc.get_objects(generation=2)) < frozen
    finally:
        gc.unfreeze()
