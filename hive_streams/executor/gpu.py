"""GPU utilisation, memory and temperature through NVML (nvidia-ml-py), for heartbeats.

A host without an NVIDIA driver, or without the binding, reports nothing: the heartbeat's GPU fields stay
null, never 0. With several GPUs: mean utilisation, memory in use over all memory, the hottest temperature.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def _load_nvml():
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class Gpus:
    def __init__(self, nvml=None):
        self.nvml = nvml if nvml is not None else _load_nvml()
        self.handles: list = []
        if self.nvml is None:
            return
        try:
            self.nvml.nvmlInit()
            self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self.nvml.nvmlDeviceGetCount())]
        except Exception as exc:  # NVMLError: no driver, no library, no device
            log.info("no GPU figures in heartbeats: %s", exc)
            self.handles = []

    def read(self) -> dict[str, float]:
        """gpu_percent, gpu_memory_percent, gpu_temperature_c; empty without a GPU or when NVML fails."""
        if not self.handles:
            return {}
        nvml = self.nvml
        try:
            rates = [nvml.nvmlDeviceGetUtilizationRates(h) for h in self.handles]
            memories = [nvml.nvmlDeviceGetMemoryInfo(h) for h in self.handles]
            temperatures = [nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU) for h in self.handles]
        except Exception as exc:
            log.warning("NVML read failed: %s", exc)
            return {}
        total = sum(m.total for m in memories)
        return {"gpu_percent": round(sum(r.gpu for r in rates) / len(rates), 1),
                "gpu_memory_percent": round(100.0 * sum(m.used for m in memories) / total, 1) if total else None,
                "gpu_temperature_c": float(max(temperatures))}
