"""Which machine a speed figure was measured on, and what that machine can do at most.

A speed figure means nothing without its machine: on KVM two different hosts both read "AMD EPYC ×2" in
``/proc/cpuinfo``'s model name. :func:`machine_identity` records what tells machines apart — CPU vendor,
family, model and stepping, the instruction-set flags that set its floating-point rate (avx2, avx512f,
amx, fma), the cores this process may use, the GPUs — and an ``identity``: a short hash of exactly those
stable fields. Figures whose identities differ are never ranked or gated together.

:func:`measure_clock` adds a measured clock and FP32 FLOP per cycle per core, from a ~1 s microbenchmark
run in a child process (a crash there cannot take the run down): on x86-64 it writes machine code into an
executable page and calls it through ctypes:

- the clock: a loop of 100 dependent ``add rax, rdx`` (1 cycle of latency each, on every x86-64 core since
  the Pentium Pro), so cycles = 100 × iterations, over the thread's own CPU time (``time.thread_time``: time the
  thread spent preempted by other processes is not in it, so a loaded machine does not read a low clock; a wall
  clock read 1.97 GHz for 3.66 beside two busy cores), the best of 7 calls;
- FLOP per cycle: 12 independent chains of ``vfmadd231ps`` on ymm registers (8 FP32 lanes × 2 FLOP) and,
  where the CPU has avx512f, on zmm registers (16 lanes), more chains than any core's FMA latency × units,
  so that the FMA units, not the dependencies, set the rate. The measured value is reported as measured
  (``flop_per_cycle_measured``) and as the power of two nearest it (``flop_per_cycle``), since hardware rates
  are powers of two, never above what the flags allow.

Elsewhere, or when that fails, the clock is ``/proc/cpuinfo``'s "cpu MHz" and FLOP per cycle is read off the
flags (``method`` says which way each was obtained). The measured clock is kept out of ``identity``: it
moves with turbo and load. :func:`physical_peak` is clock × FLOP per cycle × threads: no measurement can
exceed it, so a record above it is a measurement error (:func:`annotate`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

#: the CPU flags that set a core's floating-point rate (and so its peak), recorded in the identity
RATE_FLAGS = ("fma", "avx", "avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile",
              "amx_fp16", "asimd", "sve", "sve2")
#: the fields whose values make up ``identity`` (the measured clock and FLOP/cycle are not among them)
IDENTITY_FIELDS = ("arch", "vendor", "family", "model", "stepping", "model_name", "flags", "cores", "gpus")
#: how far above the physical peak a record must be to be flagged: a margin for the clock's own measurement
PEAK_MARGIN = 0.05
#: seconds the child process of :func:`measure_clock` may take before it is given up
PROBE_TIMEOUT_S = 20.0


# --------------------------------------------------------------------------- what the machine is


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Vendor, family, model, stepping, model name and the rate flags of the first processor in ``text`` (the
    contents of ``/proc/cpuinfo``; x86 and Arm spellings), and its "cpu MHz". Missing fields are None."""
    first: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if first:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            first.setdefault(key.strip().lower(), value.strip())

    def integer(*keys: str) -> int | None:
        for k in keys:
            v = first.get(k)
            if v:
                try:
                    return int(v, 0)
                except ValueError:
                    continue
        return None

    flags = set((first.get("flags") or first.get("features") or "").split())
    mhz = first.get("cpu mhz")
    try:
        mhz_value = float(mhz) if mhz else None
    except ValueError:
        mhz_value = None
    return {"vendor": first.get("vendor_id") or first.get("cpu implementer"),
            "family": integer("cpu family", "cpu architecture"), "model": integer("model", "cpu part"),
            "stepping": integer("stepping", "cpu revision"),
            "model_name": first.get("model name"),
            "flags": sorted(f for f in flags if f in RATE_FLAGS or f.startswith("amx")), "cpu_mhz": mhz_value}


def _cpuinfo_text() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _from_py_cpuinfo() -> dict[str, Any] | None:
    """The same fields from py-cpuinfo where it is installed (macOS, Windows), else None."""
    try:
        import cpuinfo  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        info = cpuinfo.get_cpu_info()
    except Exception:  # noqa: BLE001 - a library's failure leaves the fields unknown, no more
        return None
    flags = set(info.get("flags") or ())
    hz = (info.get("hz_actual") or (None,))[0]
    return {"vendor": info.get("vendor_id_raw"), "family": info.get("family"), "model": info.get("model"),
            "stepping": info.get("stepping"), "model_name": info.get("brand_raw"),
            "flags": sorted(f for f in flags if f in RATE_FLAGS or f.startswith("amx")),
            "cpu_mhz": hz / 1e6 if isinstance(hz, (int, float)) and hz > 0 else None}


def gpu_identity() -> list[dict[str, Any]]:
    """Name, driver and maximum SM clock of every CUDA GPU torch sees (``nvidia-smi`` for the driver and clock
    where it answers); [] without CUDA."""
    try:
        import torch
    except ImportError:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        gpus = [{"name": torch.cuda.get_device_name(i), "driver": None, "clock_mhz": None,
                 "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                 "cuda": torch.version.cuda} for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken CUDA install has no GPU to name
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10)
        for gpu, line in zip(gpus, out.stdout.strip().splitlines() if out.returncode == 0 else []):
            driver, _, clock = (x.strip() for x in line.partition(","))
            gpu["driver"] = driver or None
            gpu["clock_mhz"] = float(clock) if clock.replace(".", "", 1).isdigit() else None
    except (OSError, subprocess.SubprocessError):
        pass
    return gpus


def identity_of(fields: Mapping[str, Any]) -> str:
    """The identity hash of a machine's stable fields (:data:`IDENTITY_FIELDS`; GPUs by name only): 12 hex
    digits of their sha256. Two machines with the same hash are the same kind of machine."""
    stable = {k: fields.get(k) for k in IDENTITY_FIELDS}
    stable["gpus"] = [g.get("name") if isinstance(g, Mapping) else g for g in stable.get("gpus") or ()]
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:12]


def machine_identity(cpuinfo_text: str | None = None, cores: int | None = None,
                     gpus: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The machine's stable description and its ``identity`` hash (nothing measured: cheap). ``cpuinfo_text``,
    ``cores`` and ``gpus`` replace what is read from this machine (tests)."""
    from .cores import usable_cores

    text = _cpuinfo_text() if cpuinfo_text is None else cpuinfo_text
    cpu = parse_cpuinfo(text) if text.strip() else (_from_py_cpuinfo() or parse_cpuinfo(""))
    if cpuinfo_text is None and not cpu.get("model_name"):
        cpu["model_name"] = platform.processor() or None
    out = {"arch": platform.machine().lower() if cpuinfo_text is None else _arch_of(cpu), **cpu,
           "cores": usable_cores() if cores is None else int(cores),
           "gpus": [dict(g) for g in (gpu_identity() if gpus is None else gpus)]}
    out["identity"] = identity_of(out)
    return out


def _arch_of(cpu: Mapping[str, Any]) -> str:
    return "x86_64" if cpu.get("vendor") in ("GenuineIntel", "AuthenticAMD") else "unknown"


def describe(machine: Mapping[str, Any] | None) -> str:
    """``AMD EPYC (family 26 model 2 stepping 1, avx512f, 2 cores) [3f2a…]``: one line naming a machine."""
    if not isinstance(machine, Mapping) or not machine.get("identity"):
        return "an unrecorded machine"
    fam = " ".join(f"{k} {machine[k]}" for k in ("family", "model", "stepping") if machine.get(k) is not None)
    flags = [str(f) for f in machine.get("flags")] if isinstance(machine.get("flags"), (list, tuple)) else []
    widest = next((f for f in ("amx_tile", "avx512f", "avx2", "avx", "sve", "asimd") if f in flags), None)
    parts = [p for p in (fam, widest, f"{machine.get('cores')} cores" if machine.get("cores") else None) if p]
    listed = machine.get("gpus") if isinstance(machine.get("gpus"), (list, tuple)) else ()
    gpus = ", ".join(str(g.get("name")) for g in listed if isinstance(g, Mapping))
    name = str(machine.get("model_name") or machine.get("vendor") or "CPU")
    return (f"{name} ({', '.join(parts)})" + (f" + {gpus}" if gpus else "") + f" [{machine['identity']}]")


# --------------------------------------------------------------------------- what the machine can do


def _probe_source() -> str:
    """The child process's program: builds the x86-64 routines, times them, prints JSON. Self-contained (no
    genbench import), so that it runs whatever ``sys.path`` the child has."""
    return r'''
import ctypes, json, mmap, sys, time

def vex_fma(dst, wide):
    # vfmadd231ps dst, ymm12/zmm12, ymm13/zmm13
    modrm = bytes([0xC0 | ((dst & 7) << 3) | 5])
    if wide:  # EVEX.512.66.0F38.W0 B8 /r
        p0 = (0x80 if dst < 8 else 0) | 0x40 | 0x10 | 0x02  # R~ X~ (B~ = 0: reg 13) R'~, mm = 0F38
        return bytes([0x62, p0, 0x1D, 0x48, 0xB8]) + modrm
    b1 = (0x80 if dst < 8 else 0) | 0x40 | 0x02  # R~ X~ (B~ = 0: reg 13), m-mmmm = 0F38
    return bytes([0xC4, b1, 0x1D, 0xB8]) + modrm  # W0 vvvv=~12 L=1 pp=66

def vex_xor(r):
    # vxorps ymm_r, ymm_r, ymm_r (VEX: clears the upper zmm bits too)
    inv = 0 if r >= 8 else 1
    b1 = (inv << 7) | 0x40 | (inv << 5) | 0x01
    b2 = ((~r & 0xF) << 3) | 0x04
    return bytes([0xC4, b1, b2, 0x57, 0xC0 | ((r & 7) << 3) | (r & 7)])

def loop(body, prologue=b"", epilogue=b""):
    # rdi: iterations. body; dec rdi; jnz body; epilogue; ret
    code = bytearray(prologue)
    top = len(code)
    code += body + b"\x48\xFF\xCF"
    rel = top - (len(code) + 6)
    code += b"\x0F\x85" + rel.to_bytes(4, "little", signed=True)
    return bytes(code + epilogue + b"\xC3")

ADDS = 100
CHAINS, UNROLL = 12, 4
clock_code = loop(b"\x48\x01\xD0" * ADDS, prologue=b"\x31\xC0\xBA\x01\x00\x00\x00")  # xor eax,eax; mov edx,1
def fma_code(wide):
    body = b"".join(vex_fma(i, wide) for _ in range(UNROLL) for i in range(CHAINS))
    return loop(body, prologue=b"".join(vex_xor(r) for r in range(14)), epilogue=b"\xC5\xF8\x77")

def routine(code):
    buf = mmap.mmap(-1, mmap.PAGESIZE * (1 + len(code) // mmap.PAGESIZE),
                    prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
    fn._buf = buf
    return fn

clock = time.thread_time  # CPU time of this thread: the time it was preempted (other processes ran) is not in it

def best_time(fn, seconds, repeats=7):
    n = 1000
    while True:  # calibrate to about seconds / repeats a call
        t0 = clock(); fn(n); t = clock() - t0
        if t > 0.01:
            break
        n *= 4
    n = max(1, int(n * seconds / repeats / t))
    best = float("inf")
    for _ in range(repeats):
        t0 = clock(); fn(n); best = min(best, clock() - t0)
    return n, best

seconds = float(sys.argv[1]); wide = sys.argv[2] == "1"
out = {}
n, t = best_time(routine(clock_code), seconds * 0.3)
hz = n * ADDS / t
out["clock_hz"] = hz
for name, w in (("ymm", False),) + ((("zmm", True),) if wide else ()):
    n, t = best_time(routine(fma_code(w)), seconds * 0.35)
    out["flop_per_cycle_" + name] = n * UNROLL * CHAINS * (16 if w else 8) * 2 / (t * hz)
print(json.dumps(out))
'''


def _nominal(measured: float, bound: float | None = None) -> float:
    """The power of two nearest a measured FLOP/cycle in log scale (hardware rates are powers of two; a loaded
    machine reads low, a clock read low reads high, and either would have to be 41% off to pick another), never
    above what the flags allow (``bound``)."""
    if measured <= 0:
        return measured
    p = 2.0 ** round(math.log2(measured))
    return min(p, bound) if bound else p


def flop_per_cycle_from_flags(flags: Iterable[str]) -> float | None:
    """FP32 FLOP per cycle per core as the flags suggest: 2 FMA units × lanes × 2 (an upper bound: some cores
    have one unit, or split a 512-bit FMA in two); None where the flags say nothing."""
    f = set(flags)
    if "avx512f" in f:
        return 64.0
    if "fma" in f and "avx2" in f:
        return 32.0
    if "avx" in f:
        return 16.0
    if "asimd" in f:
        return 16.0
    return None


_MEASURED: dict[tuple, dict[str, Any]] = {}


def measure_clock(machine: Mapping[str, Any] | None = None, seconds: float = 1.0, *,
                  runner: Any = None) -> dict[str, Any]:
    """The clock (GHz) and FP32 FLOP per cycle per core, measured once per process (cached): ``clock_ghz``,
    ``flop_per_cycle`` (nominal), ``flop_per_cycle_measured``, ``method`` (``microbenchmark`` or the
    fallbacks ``cpuinfo`` / ``flags``), ``seconds`` (what it took) and ``error`` (why the microbenchmark was
    not used). ``runner`` replaces the child process (tests): called with the argv list, it returns
    (returncode, stdout)."""
    import time

    machine = machine if machine is not None else machine_identity()
    key = (machine.get("identity"), seconds, runner is None)
    if runner is None and key in _MEASURED:
        return dict(_MEASURED[key])
    flags = list(machine.get("flags") or ())
    t0 = time.perf_counter()
    got: dict[str, Any] = {}
    error = None
    if machine.get("arch") in ("x86_64", "amd64") and "fma" in flags and "avx2" in flags:
        argv = [sys.executable, "-I", "-c", _probe_source(), str(seconds), "1" if "avx512f" in flags else "0"]
        try:
            if runner is not None:
                code, stdout = runner(argv)
            else:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                                      env={k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")})
                code, stdout = proc.returncode, proc.stdout
            if code != 0:
                error = f"the microbenchmark's process exited with {code}"
            else:
                got = json.loads(stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            error = f"the microbenchmark failed: {type(exc).__name__}: {exc}"
    else:
        error = "no x86-64 FMA microbenchmark for this CPU"
    out: dict[str, Any] = {"method": None, "clock_ghz": None, "flop_per_cycle": None,
                           "flop_per_cycle_measured": None, "error": error}
    hz = got.get("clock_hz") if isinstance(got.get("clock_hz"), (int, float)) else None
    fpc = max((v for k, v in got.items() if k.startswith("flop_per_cycle_") and isinstance(v, (int, float))),
              default=None)
    if hz and hz > 0 and fpc and fpc > 0:
        out.update(method="microbenchmark", clock_ghz=hz / 1e9,
                   flop_per_cycle=_nominal(fpc, flop_per_cycle_from_flags(flags)),
                   flop_per_cycle_measured=fpc,
                   per_width={k.removeprefix("flop_per_cycle_"): v for k, v in got.items() if k.startswith("flop_per")})
    else:
        mhz = machine.get("cpu_mhz")
        out.update(method="cpuinfo and flags", clock_ghz=mhz / 1e3 if isinstance(mhz, (int, float)) and mhz > 0 else None,
                   flop_per_cycle=flop_per_cycle_from_flags(flags))
    out["seconds"] = time.perf_counter() - t0
    if runner is None:
        _MEASURED[key] = dict(out)
    return out


def physical_peak(measured: Mapping[str, Any] | None, threads: int, cores: int | None = None) -> dict[str, Any] | None:
    """The physical FP32 peak, clock × FLOP per cycle × threads (threads capped at the usable ``cores``), in
    GFLOP/s; None when the clock or FLOP per cycle is unknown."""
    if not measured:
        return None
    clock, fpc = measured.get("clock_ghz"), measured.get("flop_per_cycle")
    if not isinstance(clock, (int, float)) or not isinstance(fpc, (int, float)) or clock <= 0 or fpc <= 0:
        return None
    used = max(1, min(int(threads), int(cores)) if cores else int(threads))
    return {"gflops_per_s": clock * fpc * used, "clock_ghz": clock, "flop_per_cycle": fpc, "threads": used,
            "method": measured.get("method")}


# --------------------------------------------------------------------------- records against the limits


def annotate(records: Sequence[Any], identity: str | None, peak: float | None, ceiling: float | None) -> list[Any]:
    """``records`` (PerfRecords) stamped with the machine's ``identity`` and, where they have GFLOP/s, their
    share of the physical ``peak`` and of the practical GEMM ``ceiling``. A record above the physical peak (by more
    than :data:`PEAK_MARGIN`, the clock's own uncertainty) is a measurement error: ``measurement_error`` says so,
    it is not valid, and no report publishes it."""
    from dataclasses import replace

    out = []
    for r in records:
        g = r.gflops_per_s if isinstance(r.gflops_per_s, (int, float)) and r.gflops_per_s > 0 else None
        changes: dict[str, Any] = {"machine": identity if r.machine is None else r.machine}
        if g is not None and peak:
            changes["share_of_peak"] = g / peak
        if g is not None and ceiling:
            changes["share_of_ceiling"] = g / ceiling
        if g is not None and peak and g > peak * (1 + PEAK_MARGIN):
            why = (f"{g:.1f} GFLOP/s is above this machine's physical peak ({peak:.1f} GFLOP/s, clock × FLOP per "
                   "cycle × threads): a measurement error, not published")
            changes.update(measurement_error=why, valid=False,
                           invalid_reason="; ".join(x for x in (r.invalid_reason, why) if x),
                           figure_validity={**(r.figure_validity or {}), "throughput": False})
        out.append(replace(r, **changes))
    return out


__all__ = ["IDENTITY_FIELDS", "PEAK_MARGIN", "RATE_FLAGS", "annotate", "describe", "flop_per_cycle_from_flags", "gpu_identity",
           "identity_of", "machine_identity", "measure_clock", "parse_cpuinfo", "physical_peak"]
