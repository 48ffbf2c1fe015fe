"""The objective registry's contract (issue 22, item 10): every registered objective, iterated
from the registry itself, returns its loss parts as the trainer reads them, and a taken name
raises :class:`~probekit.registry.RegistryError`."""

from __future__ import annotations

import pytest
import torch

from probekit.registry import RegistryError
from training.objectives import (IGNORE_INDEX, ERM, Objective, ObjectiveError, ObjectiveInput,
                                 available_objectives, build_objective, register_objective)


def _batch(seed=0):
    torch.manual_seed(seed)
    logits = torch.randn(6, 5, 7, requires_grad=True)
    labels = torch.randint(0, 7, (6, 5))
    labels[1, 3:] = IGNORE_INDEX
    return ObjectiveInput(logits, labels, ["a", "b", "c", "a", "b", "c"])


@pytest.mark.parametrize("name", available_objectives())
def test_loss_parts_contract(name):
    obj = build_objective(name)
    assert isinstance(obj, Objective) and obj.name == name and repr(obj)
    batch = _batch()
    out = obj(batch)
    # "loss" (back-propagated) plus every named part, each a finite scalar tensor
    assert "loss" in out and len(out) >= 2, sorted(out)
    for key, value in out.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0, key
        assert torch.isfinite(value), key
    # the weighted parts (w_<term>, whose shares the trainer logs) add up to the loss
    weighted = [v for k, v in out.items() if k.startswith("w_")]
    if weighted:
        torch.testing.assert_close(sum(weighted), out["loss"])
    out["loss"].backward()
    assert torch.isfinite(batch.logits.grad).all() and batch.logits.grad.abs().sum() > 0
    # the checkpointed state round-trips into a fresh objective
    fresh = build_objective(name)
    fresh.load_state_dict(obj.state_dict())
    assert set(fresh.state_dict()) == set(obj.state_dict())
    # one process: the synchronised batch gives the same parts
    again = build_objective(name)(ObjectiveInput(batch.logits.detach(), batch.labels,
                                                 batch.groups, sync=True))
    assert set(again) == set(out)
    torch.testing.assert_close(again["loss"], build_objective(name)(ObjectiveInput(
        batch.logits.detach(), batch.labels, batch.groups))["loss"])


def test_a_taken_objective_name_raises_registry_error():
    assert register_objective("erm")(ERM) is ERM          # the same class again: allowed
    with pytest.raises(RegistryError, match="objective name 'erm' is taken by "
                                            "training.objectives.erm.ERM"):
        register_objective("erm")(type("MyERM", (ERM,), {}))
    assert type(build_objective("erm")) is ERM
    with pytest.raises(ObjectiveError, match="not a subclass of Objective"):
        register_objective("not-an-objective")(dict)


def test_a_taken_adapter_method_name_raises_registry_error():
    from training.methods import (AdapterMethod, available_methods, get_method,
                                  register_method)

    assert available_methods() == ["lora", "mas-lora"]
    lora = get_method("lora")
    assert register_method(lora) is lora                   # the same object again: allowed
    with pytest.raises(RegistryError, match="adapter method name 'lora' is taken"):
        register_method(AdapterMethod("lora", "another LoRA"))
    assert get_method("lora") is lora
    assert lora.experts(["es", "it"]) == () and get_method("mas-lora").experts(["es"]) == ("es",)
    with pytest.raises(RegistryError, match="unknown adapter method 'dora'"):
        get_method("dora")


def test_every_consumer_reads_the_one_method_table(tmp_path):
    """finetune, a study's [training] section and `probekit train --method` take exactly the
    registered adapter methods."""
    import argparse
    from types import SimpleNamespace

    from probekit.study.config import _training
    from probekit.study.schemas import StudyConfigError
    from training.cli import register
    from training.finetune import METHODS, FinetuneError, finetune
    from training.methods import available_methods

    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    method = next(a for a in sub.choices["train"]._actions if a.dest == "method")
    assert list(method.choices) == available_methods() == list(METHODS)
    spec = _training({"methods": available_methods()}, "study.toml", ["base"])
    assert [m.method for m in spec.methods] == available_methods()
    with pytest.raises(StudyConfigError, match="method 'dora'; use one of 'lora', 'mas-lora'"):
        _training({"methods": ["dora"]}, "study.toml", ["base"])
    with pytest.raises(FinetuneError, match=r"method 'dora': use one of \['lora', 'mas-lora'\]"):
        finetune(None, method="dora", config=SimpleNamespace(out_dir=str(tmp_path / "run")))
