"""The benchmark driver's own logic, without a server: python3 -m unittest bench/test_driver.py"""

import sys
import tempfile
import unittest
import unittest.mock
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import driver  # noqa: E402

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:40000/api/llm-configurations
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.62ms    1.20ms  30.00ms   90.00%
    Req/Sec    10.73k     1.00k   12.00k    70.00%
  Latency Distribution
     50%  184.00us
     75%    1.90ms
     90%    2.55ms
     99%    1.02s
  103445 requests in 5.00s, 2.06GB read
  Socket errors: connect 1, read 2, write 0, timeout 12
  Non-2xx or 3xx responses: 3
Requests/sec:  20689.12
Transfer/sec:    421.50MB
"""


class WrkOutput(unittest.TestCase):
    def test_rate_latencies_and_errors(self):
        result = driver.parse_wrk(WRK_OUTPUT)
        self.assertEqual(result, driver.WrkResult(rps=20689.12, p50_ms=0.18, p99_ms=1020.0, errors=18,
                                                  answered_2xx=103442))

    def test_latency_units(self):
        self.assertEqual(driver.wrk_latency_ms("250.00us"), 0.25)
        self.assertEqual(driver.wrk_latency_ms("4.75ms"), 4.75)
        self.assertEqual(driver.wrk_latency_ms("1.50s"), 1500)
        self.assertEqual(driver.wrk_latency_ms("2.00m"), 120000)

    def test_unreadable_output_stops_the_run(self):
        with self.assertRaises(driver.BenchError):
            driver.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")

    def test_distribution_runs_from_its_heading_to_the_totals(self):
        lines = driver.latency_distribution(WRK_OUTPUT)
        self.assertEqual(lines[0], "  Latency Distribution")
        self.assertEqual(lines[-1], "  Non-2xx or 3xx responses: 3")
        self.assertEqual(len(lines), 8)


class Medians(unittest.TestCase):
    def test_odd_and_even_counts(self):
        self.assertEqual(driver.median([3.0, 1.0, 2.0]), 2.0)
        self.assertEqual(driver.median([4.0, 1.0, 3.0, 2.0]), 2.0)  # the lower middle, as sort | awk did
        self.assertEqual(driver.median([7.0]), 7.0)


class Targets(unittest.TestCase):
    def test_the_data_file_names_known_quantities_and_renders_its_labels(self):
        targets = driver.load_targets()
        self.assertEqual(targets[0].label, "API list ≥ 0.15 × /healthz on SQLite")
        self.assertIn("list p99 ≤ 25 ms while 100 tests and the scheduled checks hang (SQLite)", [target.label for target in targets])
        self.assertEqual({target.quantity for target in targets}, set(driver.QUANTITIES))

    def test_judged_on_the_value_as_shown(self):
        target = driver.Target("ratio", "list_to_healthz.sqlite", ">=", 0.15, True)
        self.assertEqual(target.judge({"list_to_healthz.sqlite": 0.14951}), ("0.150", "PASS"))
        self.assertEqual(target.judge({"list_to_healthz.sqlite": 0.1494}), ("0.149", "FAIL"))
        rss = driver.Target("rss", "rss_mib.sqlite", "<=", 40, True)
        self.assertEqual(rss.judge({"rss_mib.sqlite": 40.04}), ("40.0 MiB", "PASS"))
        errors = driver.Target("errors", "list_errors", "==", 0, True)
        self.assertEqual(errors.judge({"list_errors": 2}), ("2", "FAIL"))

    def test_a_bad_data_file_is_refused_before_anything_runs(self):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "targets.toml"
            path.write_text('[[target]]\nlabel = "x"\nquantity = "speed"\ncompare = ">="\nthreshold = 1\n')
            with self.assertRaises(driver.BenchError):
                driver.load_targets(path)


class WaitingResolves(unittest.TestCase):
    def test_tokens_carry_at_most_their_share_of_waits(self):
        self.assertEqual(driver.tokens_for(5000), 50)
        self.assertEqual(driver.tokens_for(5001), 51)
        self.assertEqual(driver.tokens_for(100), 1)
        self.assertEqual(driver.tokens_for(1), 1)

    def test_a_waiting_request_is_one_conditional_resolve_with_its_wait(self):
        raw = driver.waiting_request("lny_token", '"tag"', 60).decode()
        self.assertTrue(raw.startswith("GET /api/resolve?wait=60 HTTP/1.1\r\n"), raw)
        self.assertIn("\r\nAuthorization: Bearer lny_token\r\n", raw)
        self.assertIn('\r\nIf-None-Match: "tag"\r\n', raw)
        self.assertTrue(raw.endswith("\r\n\r\n"))

    def test_cost_is_measured_over_idle_and_the_targets_name_it(self):
        result = driver.WaitingResult(idle_kib=30 * 1024, waiting_kib=70 * 1024 + 512)
        self.assertEqual(result.over_idle_mib, 40.5)
        labels = [target.label for target in driver.load_targets()]
        self.assertIn("RSS with 5000 waiting resolves ≤ 50 MiB over idle (SQLite)", labels)
        self.assertIn("API list p99 ≤ 25 ms while 5000 resolves wait (SQLite)", labels)

    def test_only_the_waiting_phase_may_be_chosen_alone(self):
        with unittest.mock.patch.dict("os.environ", {"BENCH_ONLY": "waiting"}):
            self.assertEqual(driver.options_from_environment().only, "waiting")
        with unittest.mock.patch.dict("os.environ", {"BENCH_ONLY": "list"}):
            with self.assertRaises(driver.BenchError):
                driver.options_from_environment()


class GeneratedSection(unittest.TestCase):
    def test_only_the_text_between_the_markers_is_replaced(self):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "BENCHMARKS.md"
            path.write_text("# Benchmarks\n\nkept\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\nalso kept\n")
            driver.rewrite_generated_section(path, "new report\n")
            self.assertEqual(path.read_text(), "# Benchmarks\n\nkept\n\n<!-- bench:start -->\nnew report\n"
                                               "<!-- bench:end -->\n\nalso kept\n")


if __name__ == "__main__":
    unittest.main()
