"""A re-score's worker process starts with glibc's allocator keeping its large arrays in
its heap (``baton.store.event_pass.WORKER_ALLOCATOR``: fewer page faults and unmaps for
the same peak memory), unless the caller's environment already says otherwise."""

from __future__ import annotations

from unittest import mock

import pytest

from baton.store import event_pass


def test_a_worker_gets_the_allocator_settings_and_the_callers_own_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_TOP_PAD_", "4096")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with mock.patch.object(event_pass.subprocess, "Popen") as popen:
        event_pass.Worker()
    env = popen.call_args.kwargs["env"]
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(1 << 32)
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(1 << 34)
    assert env["MALLOC_TOP_PAD_"] == "4096"
    assert env["PATH"] == event_pass.os.environ["PATH"]
