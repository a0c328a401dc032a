"""Small shared helpers for the MSA Triton kernels (launch sizing)."""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def device_programs(device: torch.device) -> int:
    """Streaming multiprocessors to fill; a token 4 off the GPU (the interpreter) so split paths still get tested."""
    if device.type == "cuda":
        return _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    return 4


def resident_programs(kernel: object, num_warps: int, device: torch.device) -> int:
    """How many programs of a compiled Triton kernel one SM holds at once, by registers, shared memory and threads."""
    props = torch.cuda.get_device_properties(device)
    kernel._init_handles()  # type: ignore[attr-defined]  # loads the binary, which sets n_regs
    warp_regs = -(-kernel.n_regs * 32 // 256) * 256  # type: ignore[attr-defined]  # allocated per warp, in 256s
    by_regs = getattr(props, "regs_per_multiprocessor", 65536) // (warp_regs * num_warps)  # 64K on sm_70..sm_90
    # 1 KB of each program's shared memory is the runtime's own.
    by_shared = props.shared_memory_per_multiprocessor // (kernel.metadata.shared + 1024)  # type: ignore[attr-defined]
    by_threads = props.max_threads_per_multi_processor // (32 * num_warps)
    return int(min(by_regs, by_shared, by_threads))


_STATE: dict[tuple[torch.device, str], torch.Tensor] = {}


def kernel_state(device: torch.device, kind: str, n: int) -> torch.Tensor:
    """n int32 zeros kept across calls, one buffer per (device, kind), for state the kernels return to zero
    themselves (so decode needs no memset launch): arrival counters, epochs whose value does not matter, only that it
    changes, and the counter sets an epoch picks. One stream at a time may use them, as the engine decodes on one."""
    buf = _STATE.get((device, kind))
    if buf is None or buf.numel() < n:
        buf = torch.zeros(max(n, 1024), dtype=torch.int32, device=device)
        _STATE[(device, kind)] = buf
    return buf[:n]


_compat_done = False


def interpreter_compat() -> None:
    """Make Triton 3.6's CPU interpreter usable whatever happened first in the process. Idempotent.

    - NumPy >= 2.4 refuses `int(1-element array)`, which the interpreter uses for every scalar, so a loop bound that
      comes from program_id or a load fails: re-register `__index__` to take the element.
    - triton.language's own helpers (tl.max, tl.sort, ...) are jit functions decided when triton is imported; if
      something imported triton before TRITON_INTERPRET=1 was set (transformers does), they are compiled-mode objects
      that refuse to run inside an interpreted kernel. Re-wrap them as interpreted functions.
    """
    global _compat_done
    if _compat_done:
        return
    _compat_done = True
    try:
        import triton.language as tl
        from triton.runtime import interpreter
        from triton.runtime.jit import JITFunction
    except ImportError:
        return
    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is not None:

        def patch(tensor: object, scope: object) -> None:
            original(tensor, scope)
            scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))  # type: ignore[attr-defined]

        interpreter._patch_lang_tensor = patch

    import sys

    wrapped: dict[int, object] = {}
    holders = [m for name, m in list(sys.modules.items()) if name.startswith("triton.language") and m is not None]
    for holder in [*holders, tl.tensor]:
        for name, value in list(vars(holder).items()):
            if isinstance(value, JITFunction):
                if id(value) not in wrapped:
                    wrapped[id(value)] = interpreter.InterpretedFunction(value.fn)
                setattr(holder, name, wrapped[id(value)])


def dot_precision(x: torch.Tensor) -> str:
    """tl.dot input precision: exact fp32 products for fp32 tensors (matching the reference), else the default."""
    return "ieee" if x.dtype == torch.float32 else "tf32"


def pdl_kwargs(device: torch.device) -> dict[str, bool]:
    """Launch keywords for programmatic dependent launch, or none (before Hopper, off the GPU, or M3_MSA_PDL=0).

    A PDL kernel starts while the previous one drains and waits (`griddepcontrol.wait`) before it reads anything that
    kernel wrote: in decode, where kernels are a few µs each, that hides most of each launch gap. The kernel's PDL
    constexpr makes it call `pdl_wait_then_release` first."""
    if device.type != "cuda" or os.environ.get("M3_MSA_PDL", "1") == "0":
        return {}
    if torch.cuda.get_device_capability(device)[0] < 9:
        return {}
    return {"PDL": True, "launch_pdl": True}


@triton.jit
def pdl_wait_then_release():
    """In a PDL launch: wait until the previous kernel has finished and its writes are visible, then let the next
    kernel launch. Released only after the wait, so a kernel two launches later never overtakes an unfinished one."""
    tl.inline_asm_elementwise("griddepcontrol.wait; // $0", "=r", [], dtype=tl.int32, is_pure=False, pack=1)
    tl.inline_asm_elementwise("griddepcontrol.launch_dependents; // $0", "=r", [], dtype=tl.int32, is_pure=False,
                              pack=1)


@triton.jit
def spin_pause():
    """Sleep ~100 ns between polls of a flag, so waiting programs leave the memory system to the ones working."""
    tl.inline_asm_elementwise("nanosleep.u32 100; mov.u32 $0, 0;", "=r", [], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def global_time():
    """The GPU's global nanosecond timer (for tracing where a kernel's time goes)."""
    return tl.inline_asm_elementwise("mov.u64 $0, %globaltimer;", "=l", [], dtype=tl.int64, is_pure=False, pack=1)
