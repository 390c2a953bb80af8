"""The evaluate-time ensemble: members from params, trained once, published all at once,
and scored together with the main network."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from pipeline.data.shards import load_split
from pipeline.evaluation.evaluate import run_evaluation
from pipeline.evaluation.predictors import keras_predictor
from pipeline.training.ensemble import member_params, train_members
from pipeline.training.saving import load_net


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    # DVCLive looks for a git repository around the working directory: keep it out of ours.
    monkeypatch.chdir(tmp_path)
    yield
    keras.config.set_dtype_policy("float32")


def with_members(tiny_params, *members):
    return tiny_params | {"ensemble": {"members": list(members)}}


def test_member_overrides_merge_into_model_and_train(tiny_params):
    params = with_members(
        tiny_params,
        {"train": {"seed": 7, "augment": {"erasing": 0.5}}},
        {"model": {"name": "seed"}},
        {"model": {"dense": [32]}},
    )
    first = member_params(params, 1)
    assert first["train"]["seed"] == 7
    assert first["train"]["augment"] == tiny_params["train"]["augment"] | {"erasing": 0.5}
    assert first["train"]["lr"] == tiny_params["train"]["lr"]
    assert first["model"] == tiny_params["model"]
    # Another architecture takes none of the main network's parameters.
    assert member_params(params, 2)["model"] == {"name": "seed"}
    assert member_params(params, 3)["model"] == tiny_params["model"] | {"dense": [32]}
    assert params["train"]["seed"] == 0, "the main params must stay as they were"


@pytest.mark.parametrize("member", [{"optimizer": "sgd"}, 3, {"train": {}, "evaluate": {}}])
def test_a_malformed_member_is_refused_before_any_training(tiny_params, tmp_path, member):
    params = with_members(tiny_params, {"train": {"seed": 1}}, member)
    with pytest.raises(ValueError, match=r"ensemble\.members\[1\].*only model and/or train"):
        train_members(params, tmp_path / "no-data", tmp_path / "out", tmp_path / "resume")
    assert not (tmp_path / "out").exists() and not (tmp_path / "resume").exists()


@pytest.mark.slow
def test_members_are_trained_published_and_scored_with_the_network(
    tiny_prepared, tiny_params, tmp_path, capsys
):
    from pipeline.training.run import train_and_save

    tiny_params["train"]["epochs"] = 2
    main = tmp_path / "model.keras"
    train_and_save(tiny_params, tiny_prepared, main, tmp_path / "log", tmp_path / "r", verbose=0)
    out, resume = tmp_path / "ensemble", tmp_path / "resume"

    # Member 2 cannot be built: the stage fails, publishes nothing, keeps member 1.
    broken = with_members(tiny_params, {"train": {"seed": 1}}, {"model": {"name": "nope"}})
    with pytest.raises(ValueError, match="nope"):
        train_members(broken, tiny_prepared, out, resume, verbose=0)
    assert not out.exists()

    params = with_members(tiny_params, {"train": {"seed": 1}}, {"train": {"seed": 2}})
    capsys.readouterr()
    members = train_members(params, tiny_prepared, out, resume, verbose=0)
    assert "Ensemble member 1: already trained" in capsys.readouterr().out
    assert not resume.exists()
    assert [m["file"] for m in members] == ["member-1.keras", "member-2.keras"]
    assert json.loads((out / "members.json").read_text()) == members
    for m in members:
        log = json.loads((out / "logs" / f"member-{m['member']}" / "metrics.json").read_text())
        assert m["best_val_accuracy"] == log["best_val_accuracy"]

    metrics = run_evaluation(
        tiny_params | {"evaluate": {"tta": True, "tta_shift": 1}},
        tiny_prepared,
        main,
        tmp_path / "metrics.json",
        tmp_path / "eval",
        ensemble_dir=out,
    )
    assert set(metrics) == {"test", "test_tta", "test_ensemble", "test_ensemble_tta"}
    images, labels = load_split(tiny_prepared, "test")
    nets = [load_net(main), *(load_net(out / m["file"]) for m in members)]
    probs = [keras_predictor(net)(images) for net in nets]
    assert not np.allclose(probs[0], probs[1]), "members must differ from the main network"
    accuracy = float((np.mean(probs, axis=0).argmax(1) == labels).mean())
    assert metrics["test_ensemble"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written.pop("machines")[0]["stage"] == "evaluate"
    assert written == metrics


@pytest.mark.slow
def test_no_members_means_no_ensemble_figures(tiny_prepared, tiny_params, tmp_path):
    from pipeline.training.run import train_and_save

    tiny_params["train"]["epochs"] = 1
    main = tmp_path / "model.keras"
    train_and_save(tiny_params, tiny_prepared, main, tmp_path / "log", tmp_path / "r", verbose=0)
    assert (
        train_members(
            tiny_params | {"ensemble": {"members": []}},
            tiny_prepared,
            tmp_path / "ens",
            tmp_path / "resume",
        )
        == []
    )
    assert json.loads((tmp_path / "ens" / "members.json").read_text()) == []
    metrics = run_evaluation(
        tiny_params, tiny_prepared, main, tmp_path / "m.json", tmp_path / "eval", tmp_path / "ens"
    )
    assert set(metrics) == {"test"}
