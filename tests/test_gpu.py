"""GPU figures for heartbeats: NVML's readings when there is a GPU, nothing (null fields) when there is none."""
from __future__ import annotations

from types import SimpleNamespace

from hive_streams.domain.commands import Heartbeat
from hive_streams.executor.gpu import Gpus


class NvmlError(Exception):
    pass


class FakeNvml:
    """NVML's calls as nvidia-ml-py names them, answering for two devices (the machine has no GPU)."""
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, devices=2, fail_init=False):
        self.devices, self.fail_init = devices, fail_init

    def nvmlInit(self):
        if self.fail_init:
            raise NvmlError("NVML Shared Library Not Found")

    def nvmlDeviceGetCount(self):
        return self.devices

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=(40, 80)[h], memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=16 * 2**30, used=(4, 12)[h] * 2**30, free=0)

    def nvmlDeviceGetTemperature(self, h, sensor):
        return (61, 74)[h]


def test_two_gpus_report_mean_utilisation_memory_in_use_and_the_hottest():
    assert Gpus(FakeNvml()).read() == {"gpu_percent": 60.0, "gpu_memory_percent": 50.0, "gpu_temperature_c": 74.0}


def test_no_driver_means_no_figures_and_null_fields_not_zero():
    assert Gpus(FakeNvml(fail_init=True)).read() == {}
    assert Gpus(FakeNvml(devices=0)).read() == {}
    beat = Heartbeat("a", "c1", 0, cpu_percent=5.0, **Gpus(FakeNvml(fail_init=True)).read())
    assert (beat.gpu_percent, beat.gpu_memory_percent, beat.gpu_temperature_c) == (None, None, None)


def test_this_machine_through_the_real_binding():
    """nvidia-ml-py is installed; without an NVIDIA driver here it reports nothing, and never raises."""
    figures = Gpus().read()
    assert figures == {} or set(figures) == {"gpu_percent", "gpu_memory_percent", "gpu_temperature_c"}
