"""Power sources, best first: an energy counter, a power sampler, a meter's log, a utilisation model.

Every source is one class with `available()` and `read(sample)`; `read` returns
(power_w or None, cumulative energy_j or None). Counters give exact energy; samplers give power that
is integrated. `detect` walks the device profile's list and returns the first that is available.
"""

from __future__ import annotations

import csv
import os
import platform
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Reading:
    power_w: float | None
    energy_j: float | None = None


class PowerSource:
    name = "none"
    kind = "power"  # "counter": cumulative energy; "power": instantaneous watts; "model": estimated

    def available(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        """Begin any background collection (a subprocess, a file watch)."""

    def read(self, t_wall: float, cpu_sys_pct: float) -> Reading:
        raise NotImplementedError

    def close(self) -> None:
        pass


# --- RAPL ---------------------------------------------------------------------------------------


class WrappingCounter:
    """A cumulative counter that wraps at `max_value`: returns the unwrapped total since the first read."""

    def __init__(self, max_value: int):
        self.max_value = max_value
        self.last: int | None = None
        self.total = 0

    def update(self, raw: int) -> int:
        if self.last is not None:
            delta = raw - self.last
            if delta < 0:  # wrapped around
                delta += self.max_value + 1
            self.total += delta
        self.last = raw
        return self.total


class Rapl(PowerSource):
    """Linux powercap RAPL: package domains' energy_uj (root-only on recent kernels), summed."""

    name, kind = "rapl", "counter"

    def __init__(self, root: str = "/sys/class/powercap"):
        self.root = Path(root)
        self.domains = sorted(p for p in self.root.glob("intel-rapl:*") if re.fullmatch(r"intel-rapl:\d+", p.name))
        self.counters: dict[Path, WrappingCounter] = {}

    def available(self) -> bool:
        try:
            return bool(self.domains) and all(int((d / "energy_uj").read_text()) >= 0 for d in self.domains)
        except (OSError, ValueError):
            return False

    def start(self) -> None:
        for d in self.domains:
            self.counters[d] = WrappingCounter(int((d / "max_energy_range_uj").read_text()))
            self.counters[d].update(int((d / "energy_uj").read_text()))

    def read(self, t_wall: float, cpu_sys_pct: float) -> Reading:
        total_uj = sum(c.update(int((d / "energy_uj").read_text())) for d, c in self.counters.items())
        return Reading(None, total_uj / 1e6)


# --- macOS powermetrics ---------------------------------------------------------------------------

_POWERMETRICS_LINE = re.compile(r"^(CPU Power|Combined Power \(CPU \+ GPU \+ ANE\)):\s*([\d.]+)\s*mW", re.M)


def parse_powermetrics(text: str) -> list[float]:
    """Watts of each `CPU Power: N mW` line (the CPU rail: we run CPU only)."""
    return [float(v) / 1000.0 for k, v in _POWERMETRICS_LINE.findall(text) if k == "CPU Power"]


class _StreamingCommand(PowerSource):
    """A command that prints samples forever; a thread keeps the latest value."""

    interval_ms = 200

    def __init__(self):
        self.latest: float | None = None
        self.proc: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def parse_chunk(self, text: str) -> list[float]:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            values = self.parse_chunk(line)
            if values:
                self.latest = values[-1]

    def read(self, t_wall: float, cpu_sys_pct: float) -> Reading:
        return Reading(self.latest)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Powermetrics(_StreamingCommand):
    """macOS `powermetrics --samplers cpu_power` (needs root: run snakemake under sudo, or sudo -n works)."""

    name = "powermetrics"

    def available(self) -> bool:
        if platform.system() != "Darwin" or not shutil.which("powermetrics"):
            return False
        return os.geteuid() == 0 or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0

    def command(self) -> list[str]:
        prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
        return prefix + ["powermetrics", "--samplers", "cpu_power", "-i", str(self.interval_ms)]

    def parse_chunk(self, text: str) -> list[float]:
        return parse_powermetrics(text)


# --- Raspberry Pi 5 vcgencmd -----------------------------------------------------------------------

_PMIC_LINE = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([\d.]+)[AV]\s*$", re.M)


def parse_pmic_read_adc(text: str) -> float:
    """Board power estimate: sum of volts x amps over the rails that report both (no input rail)."""
    amps, volts = {}, {}
    for rail, unit, value in _PMIC_LINE.findall(text):
        (amps if unit == "A" else volts)[rail] = float(value)
    return sum(a * volts[r] for r, a in amps.items() if r in volts)


class Vcgencmd(PowerSource):
    """Raspberry Pi 5 PMIC rails through `vcgencmd pmic_read_adc`, polled by a thread."""

    name = "vcgencmd"
    period_s = 0.2

    def __init__(self):
        self.latest: float | None = None
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def available(self) -> bool:
        if not shutil.which("vcgencmd"):
            return False
        out = subprocess.run(["vcgencmd", "pmic_read_adc"], capture_output=True, text=True)
        return out.returncode == 0 and parse_pmic_read_adc(out.stdout) > 0

    def _poll(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["vcgencmd", "pmic_read_adc"], capture_output=True, text=True)
            if out.returncode == 0:
                self.latest = parse_pmic_read_adc(out.stdout)
            self._stop.wait(self.period_s)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def read(self, t_wall: float, cpu_sys_pct: float) -> Reading:
        return Reading(self.latest)

    def close(self) -> None:
        self._stop.set()


# --- an external meter's CSV log -------------------------------------------------------------------


def read_meter_csv(path: str | os.PathLike) -> tuple[list[float], list[float]]:
    """(unix seconds, watts) from a CSV with a `timestamp` column and `watts` (or `volts` and `amps`)."""
    times, watts = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            row = {k.strip().lower(): v for k, v in row.items() if k}
            try:
                t = float(row["timestamp"])
                w = float(row["watts"]) if row.get("watts") not in (None, "") else float(row["volts"]) * float(row["amps"])
            except (KeyError, ValueError):
                continue
            times.append(t)
            watts.append(w)
    return times, watts


class MeterCsv(PowerSource):
    """A USB or wall meter's log (written by its own tool, e.g. at 1 Hz), aligned by wall-clock time."""

    name = "meter_csv"

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self._mtime = None
        self._data: tuple[list[float], list[float]] = ([], [])

    def available(self) -> bool:
        return bool(self.path) and self.path.is_file()

    def read(self, t_wall: float, cpu_sys_pct: float) -> Reading:
        import numpy as np

        mtime = self.path.stat().st_mtime
        if mtime != self._mtime:
            self._data, self._mtime = read_meter_csv(self.path), mtime
        times, watts = self._data
        if not times or t_wall < times[0] or t_wall > times[-1] + 2.0:
            return Reading(None)
        return Reading(float(np.interp(t_wall, times, watts)))


# --- the utilisation model -------------------------------------------------------------------------


class UtilisationModel(PowerSource):
    """Last resort: P = idle_w + (max_w - idle_w) x system CPU utilisation (0..1 over all cores)."""

    name, kind = "model", "model"

    def __init__(self, idle_w: float, max_w: float, n_cores: int):
        self.idle_w, self.max_w, self.n_cores = idle_w, max_w, max(1, n_cores)

    def available(self) -> bool:
        return True

    def read(self, t_wall: float, cpu_sys_pct: float) -> Reading:
        util = min(max(cpu_sys_pct / (100.0 * self.n_cores), 0.0), 1.0)
        return Reading(self.idle_w + (self.max_w - self.idle_w) * util)


def candidates(profile: dict, n_cores: int) -> list[PowerSource]:
    power = profile["power"]
    make = {
        "rapl": Rapl,
        "powermetrics": Powermetrics,
        "vcgencmd": Vcgencmd,
        "meter_csv": lambda: MeterCsv(power.get("meter_csv")),
        "model": lambda: UtilisationModel(power["idle_w"], power["max_w"], n_cores),
    }
    return [make[name]() for name in power["sources"]]


def detect(profile: dict, n_cores: int) -> PowerSource:
    """The first available source of the profile's list; the utilisation model if none is."""
    for source in candidates(profile, n_cores):
        try:
            if source.available():
                return source
        except OSError:
            continue
    power = profile["power"]
    return UtilisationModel(power["idle_w"], power["max_w"], n_cores)
