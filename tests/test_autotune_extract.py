"""Task extraction from whole graphs: the workloads are the ones the build looks up, with
weights that count kernel calls, and a record for a task is applied by the build."""

import json

import numpy as np
import pytest

import autotune
import tensorlang as tl
from tensorlang import graph as G
from tensorlang.dispatch import record
from tensorlang.graph import models


@pytest.fixture(scope="module")
def small_resnet():
    return models.resnet50(layers=(1, 1, 1, 1), image=64, width=0.25)


def test_tasks_are_the_workloads_the_build_dispatches_to(small_resnet):
    mod, ins = small_resnet
    with tl.dispatch.untuned():
        tasks = autotune.extract_tasks(mod, opt_level=3)
        lib = G.build(mod, opt_level=3)
    built = [json.dumps(st.dispatch[0]) for st in lib.steps if st.dispatch]
    assert {json.dumps(t.workload) for t in tasks} == set(built)
    for t in tasks:
        assert t.weight == built.count(json.dumps(t.workload)) and t.flop > 0
    assert sum(t.weight for t in tasks) == len(built)
    assert lib.dispatch_report() == {"default": len(built),
                                     "untemplated": lib.kernel_count - len(built)}
    names = {t.name for t in tasks}
    assert "ops/conv2d_NCHWc" in names and {"ops/dense", "ops/matmul"} & names
    assert [t.weight * t.flop for t in tasks] == sorted((t.weight * t.flop for t in tasks),
                                                        reverse=True)


def test_a_record_for_a_task_is_applied_to_its_fused_kernels(small_resnet, tmp_path):
    mod, ins = small_resnet
    with tl.dispatch.untuned():
        tasks = autotune.extract_tasks(mod, opt_level=3)
    task = tasks[0]
    config = task.config_space.get(len(task.config_space) - 1)     # not the default
    log = tmp_path / "model.jsonl"
    record.append(str(log), record.make_record(
        task, config, autotune.MeasureResult(costs=[1e-3])))
    with tl.dispatch.untuned(), autotune.apply_history_best(str(log)):
        lib = G.build(mod, opt_level=3)
    report = lib.dispatch_report()
    assert report["log"] == task.weight
    ref = G.evaluate(mod, *ins)[0]
    np.testing.assert_allclose(lib(*ins), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_extract_from_a_torch_model():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(),
                                torch.nn.Linear(64, 32), torch.nn.GELU(),
                                torch.nn.Linear(32, 64)).eval()
    with tl.dispatch.untuned():
        tasks = autotune.extract_tasks(model, (torch.randn(8, 32),))
    by_workload = {json.dumps(t.workload): t.weight for t in tasks}
    assert sum(by_workload.values()) == 3 and len(by_workload) == 2   # two 32->64 share one
    with pytest.raises(TypeError, match="example_inputs"):
        autotune.extract_tasks(model)
