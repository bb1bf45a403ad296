"""Power sources: parsers on the documented output formats, counters, alignment, detection order."""

import pytest

from edgelaw.measure import power

# `sudo powermetrics --samplers cpu_power -i 200` on an Apple silicon Mac (format of macOS 13-15).
POWERMETRICS = """\
Machine model: Mac14,7
OS version: 23A344
Boot arguments:
Boot time: Mon Jan  6 09:10:12 2025

*** Sampled system activity (Mon Jan  6 09:41:26 2025 +0100) (204.12ms elapsed) ***

**** Processor usage ****

E-Cluster HW active frequency: 1062 MHz
E-Cluster HW active residency:  38.12% (600 MHz:   0% 912 MHz:  56% 1284 MHz:  29% 1752 MHz:  11%)
CPU 0 frequency: 1120 MHz
P-Cluster HW active frequency: 3204 MHz

CPU Power: 4567 mW
GPU Power: 12 mW
ANE Power: 0 mW
Combined Power (CPU + GPU + ANE): 4579 mW

*** Sampled system activity (Mon Jan  6 09:41:26 2025 +0100) (201.87ms elapsed) ***

CPU Power: 5012 mW
GPU Power: 8 mW
ANE Power: 0 mW
Combined Power (CPU + GPU + ANE): 5020 mW
"""

# `vcgencmd pmic_read_adc` on a Raspberry Pi 5 (firmware 2024-2025): currents then voltages per rail.
PMIC = """\
     3V7_WL_SW_A current(0)=0.00390372A
       3V3_SYS_A current(1)=0.05562801A
       1V8_SYS_A current(2)=0.17276680A
      DDR_VDD2_A current(3)=0.02147046A
      DDR_VDDQ_A current(4)=0.00000000A
       1V1_SYS_A current(5)=0.18247710A
       0V8_SW_A current(6)=0.35617340A
      VDD_CORE_A current(7)=1.20000000A
       3V3_DAC_A current(17)=0.00012210A
       3V3_ADC_A current(18)=0.00018315A
       0V8_AON_A current(16)=0.00000000A
          HDMI_A current(22)=0.02051960A
     3V7_WL_SW_V volt(8)=3.74353900V
       3V3_SYS_V volt(9)=3.31140000V
       1V8_SYS_V volt(10)=1.80146400V
      DDR_VDD2_V volt(11)=1.11181400V
      DDR_VDDQ_V volt(12)=0.60534100V
       1V1_SYS_V volt(13)=1.10598200V
       0V8_SW_V volt(14)=0.80205180V
      VDD_CORE_V volt(15)=0.75000000V
       3V3_DAC_V volt(20)=3.31080000V
       3V3_ADC_V volt(21)=3.30960000V
       0V8_AON_V volt(19)=0.79992000V
          HDMI_V volt(23)=5.14212000V
      EXT5V_V volt(24)=5.11532000V
        BATT_V volt(0)=0.00000000V
"""


def test_powermetrics_parser_reads_cpu_power_in_watts():
    assert power.parse_powermetrics(POWERMETRICS) == [4.567, 5.012]


def test_pmic_parser_sums_rails_with_both_volts_and_amps():
    watts = power.parse_pmic_read_adc(PMIC)
    expected = (0.00390372 * 3.743539 + 0.05562801 * 3.3114 + 0.1727668 * 1.801464 + 0.02147046 * 1.111814
                + 0.1824771 * 1.105982 + 0.3561734 * 0.8020518 + 1.2 * 0.75 + 0.0001221 * 3.3108
                + 0.00018315 * 3.3096 + 0.0205196 * 5.14212)
    assert watts == pytest.approx(expected, rel=1e-9)
    assert 1.0 < watts < 3.0  # EXT5V has no current: the input rail is not counted


def test_counter_wraps_around():
    c = power.WrappingCounter(max_value=999)
    assert [c.update(v) for v in [900, 950, 20, 100]] == [0, 50, 120, 200]


def fake_rapl(root, packages):
    for i, (energy, max_range) in enumerate(packages):
        d = root / f"intel-rapl:{i}"
        d.mkdir(parents=True)
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")
        sub = root / f"intel-rapl:{i}:0"  # a subdomain (core) must not be double counted
        sub.mkdir()
        (sub / "energy_uj").write_text("5\n")


def test_rapl_sums_packages_and_unwraps(tmp_path):
    fake_rapl(tmp_path, [(1_000_000, 2_000_000), (500, 10_000_000)])
    rapl = power.Rapl(str(tmp_path))
    assert rapl.available()
    rapl.start()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("1999999\n")
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("1500500\n")
    assert rapl.read(0, 0).energy_j == pytest.approx(0.999999 + 1.5)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("500000\n")  # wrapped
    assert rapl.read(0, 0).energy_j == pytest.approx(0.999999 + 0.500001 + 1.5)


def test_rapl_unreadable_is_unavailable(tmp_path):
    assert not power.Rapl(str(tmp_path)).available()


def test_meter_csv_is_aligned_by_wall_time(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text("timestamp,volts,amps\n1000.0,5.0,1.0\n1001.0,5.0,2.0\n1002.0,5.0,1.0\n")
    meter = power.MeterCsv(str(log))
    assert meter.available()
    assert meter.read(1000.5, 0).power_w == pytest.approx(7.5)
    assert meter.read(1001.0, 0).power_w == pytest.approx(10.0)
    assert meter.read(999.0, 0).power_w is None  # before the log starts
    log.write_text("timestamp,watts\n2000,3.0\n2001,4.0\n")
    assert meter.read(2000.25, 0).power_w == pytest.approx(3.25)


def test_utilisation_model():
    m = power.UtilisationModel(idle_w=2.0, max_w=10.0, n_cores=4)
    assert m.read(0, 0).power_w == 2.0
    assert m.read(0, 200.0).power_w == pytest.approx(6.0)
    assert m.read(0, 900.0).power_w == 10.0


def test_detect_takes_the_first_available_source_of_the_profile(tmp_path):
    log = tmp_path / "meter.csv"
    log.write_text("timestamp,watts\n1,1\n")
    profile = {"power": {"sources": ["vcgencmd", "meter_csv", "model"], "meter_csv": str(log), "idle_w": 1, "max_w": 2}}
    assert power.detect(profile, 2).name == "meter_csv"
    profile["power"]["meter_csv"] = str(tmp_path / "absent.csv")
    assert power.detect(profile, 2).name == "model"
