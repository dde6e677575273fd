"""Bad distribution settings fail at once, naming what was received and what is accepted."""

import json
import types

import pytest

from keras_lottery import distribute


def _config(cluster, task):
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}


@pytest.mark.parametrize("environ, expected", [
    ({}, "TF_CONFIG environment variable, which is not set"),
    ({"TF_CONFIG": "{cluster"}, "not valid JSON"),
    (_config({}, {"type": "worker", "index": 0}), "needs a \"cluster\""),
    (_config({"worker": ["a:1"], "ps": ["b:2"]}, {"type": "worker", "index": 0}), "'ps' job"),
    (_config({"worker": ["a"]}, {"type": "worker", "index": 0}), "host:port"),
    (_config({"worker": ["a:1", "b:2"]}, {"type": "worker"}), "\"task\""),
    (_config({"worker": ["a:1", "b:2"]}, {"type": "worker", "index": 2}), "not in the cluster (jobs: worker x2)"),
    (_config({"worker": ["a:1"], "chief": ["c:1", "d:1"]}, {"type": "chief", "index": 0}), "at most one"),
])
def test_tf_config_errors(environ, expected):
    with pytest.raises(ValueError) as error:
        distribute.read_tf_config(environ)
    assert expected in str(error.value)


def test_tf_config_accepted_forms(monkeypatch):
    with_chief = {"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}
    workers = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    for config in (with_chief, workers):
        assert distribute.read_tf_config({"TF_CONFIG": json.dumps(config)}) == config
    # surrounding white space is accepted, and the process environment is read by default
    monkeypatch.setenv("TF_CONFIG", "\n  " + json.dumps(workers, indent=2) + "\n")
    parsed = distribute.read_tf_config()
    assert parsed["cluster"] == {"worker": ["a:1", "b:2"]} and parsed["task"] == {"type": "worker", "index": 1}


def test_unknown_strategy_and_missing_tpu(monkeypatch):
    with pytest.raises(ValueError, match="Unknown strategy 'horovod'; accepted: default, mirrored, multi_worker, tpu"):
        distribute.make_strategy("horovod")
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError, match="--strategy=tpu found no TPU"):
        distribute.make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make_strategy("multi_worker")


def test_single_process_is_chief_and_writes_its_own_directory(tmp_path):
    assert distribute.is_chief() and distribute.task() == (None, None)
    assert distribute.worker_directory(str(tmp_path)) == str(tmp_path)
    distribute.check_global_batch(7)  # one replica: any batch splits
    two = types.SimpleNamespace(num_replicas_in_sync=2)
    with pytest.raises(ValueError, match=r"--batch_size=7 is the global batch; .* the 2 replicas .*a multiple of 2"):
        distribute.check_global_batch(7, strategy=two)
    distribute.check_global_batch(8, strategy=two)
    assert distribute.jit_compile() == "auto"
    with distribute.execution(jit_compile=False):
        assert distribute.jit_compile() is False
    assert distribute.jit_compile() == "auto"
    with pytest.raises(ValueError, match="jit_compile must be"):
        with distribute.execution(jit_compile="yes"):
            pass
