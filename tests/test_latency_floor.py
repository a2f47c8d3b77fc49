"""The latency floor: the opponent's stdout read from a pipe, verified and measured like a method."""
import pytest

from bench.probes.latency_floor import pipe_latency, pipe_latency_repeated
from bench.run.placement import split_applicable
from bench.document.as_markdown import section_lines
from bench.document.sections import latency
from bench.document.rows import Document, Row
from bench.run.targets import Workload


@pytest.mark.parametrize("placement", ["shared", "split"])
def test_a_pipe_reader_sees_every_stamped_move(placement):
    if placement == "split" and not split_applicable():
        pytest.skip("split placement needs two CPUs")
    floor = pipe_latency(Workload("go", 2000, rate=4000, stamp_every=1, placement=placement))
    assert floor["stamped"] == 2000  # every move stamped, every one read and matched
    assert 0 < floor["latency_p50_ns"] <= floor["latency_p99_ns"] <= floor["latency_max_ns"]
    assert floor["placement"] == placement


def test_eight_writers_through_one_pipe_are_matched_to_their_stamps():
    floor = pipe_latency(Workload("go", 4000, rate=8000, goroutines=8, stamp_every=4, placement="shared"))
    assert floor["stamped"] == 1000


def test_the_latency_table_shows_the_floor_beside_the_methods():
    run = Row(method="ebpf", options={}, target="go", goroutines=1, placement="split", moves=10,
              repeats=1, rate=20000.0, paced=True, latency_from="target", latency_p50_ns=50_000,
              latency_p99_ns=90_000, batch_ns_max=1000)
    floor = {"workload": "go 20000 at 20000/s", "placement": "split", "rate": 20000.0, "moves": 20000,
             "stamped": 20000, "latency_p50_ns": 12_000,
             "latency_p90_ns": 15_000, "latency_p99_ns": 40_000, "latency_p999_ns": 80_000,
             "latency_max_ns": 200_000}
    found = Document(metadata={}, methods={}, runs=[run], sections={"latency_floor": [floor]})
    text = " ".join("\n".join(section_lines(latency.section(found))).split())
    assert "| split | 20000/s | 20000 | 1 | 12.00 | 15.00 | 40.00 | - | 80.00 | 200.00 |" in text
    # repeated, the floor's p99 has the range of its runs beside it
    found.sections["latency_floor"] = [floor | {"repeats": 3, "latency_p99_per_repeat_ns": [38_000, 40_000, 47_000]}]
    text = " ".join("\n".join(section_lines(latency.section(found))).split())
    assert "| split | 20000/s | 20000 | 3 | 12.00 | 15.00 | 40.00 | 38.00–47.00 | 80.00 | 200.00 |" in text


def test_the_floor_is_measured_several_times():
    floor = pipe_latency_repeated(Workload("go", 1000, rate=4000, stamp_every=1, placement="shared"), repeats=3)
    assert floor["repeats"] == 3 and len(floor["latency_p99_per_repeat_ns"]) == 3
    assert floor["latency_p99_per_repeat_ns"][0] == floor["latency_p99_ns"]
