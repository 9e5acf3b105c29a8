"""onnxruntime sessions tuned for a 2-core box shared by several calls and the media clock."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def cpu_session(model: Path | str | bytes, threads: int = 1,
                arena: bool = True) -> ort.InferenceSession:
    """A CPU session that does not spin idle threads (spinning steals the media clock's core).

    ``arena=False`` for a model whose tensor sizes vary run to run (Piper): onnxruntime's CPU
    arena keeps the high-water mark of every size it served, and the memory pattern one plan
    per input shape, for the life of the process."""
    opts = ort.SessionOptions()
    if not arena:
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
