"""Your own weights: load_model(name, weights=PATH) and the spec NAME=PATH, with real files written here.

Round trips (plain state dict, wrapped training checkpoint, DataParallel prefixes, safetensors, a fine-tuned head),
and one clear line for each bad input; the user's file is never modified."""
import hashlib

import pytest
import torch

import padlib


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A resnet18 whose weights differ from any library initialisation, and its files in every format."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(123)
    model = padlib.load_model("resnet18", pretrained=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    state = model.state_dict()
    files = {
        "plain": d / "plain.pth",
        "wrapped": d / "wrapped.pt",
        "model_key": d / "model_key.pth",
        "dataparallel": d / "dp.pth",
        "safetensors": d / "w.safetensors",
    }
    torch.save(state, files["plain"])
    torch.save({"epoch": 7, "state_dict": state, "best_acc1": 0.5}, files["wrapped"])
    torch.save({"model": state, "optimizer": {}}, files["model_key"])
    torch.save({f"module.{k}": v for k, v in state.items()}, files["dataparallel"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(files["safetensors"]))
    return model, files


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kind", ["plain", "wrapped", "model_key", "dataparallel", "safetensors"])
def test_checkpoint_round_trips(trained, kind):
    model, files = trained
    path = files[kind]
    before = _digest(path)
    for loaded in (padlib.load_model(f"resnet18={path}"), padlib.load_model("resnet18", weights=path)):
        assert _same_weights(model, loaded)
        assert not loaded.training
        assert loaded.padlib_name == f"resnet18={path}" and loaded.padlib_weights == str(path)
        assert padlib.preprocessing(loaded) == padlib.preprocessing("resnet18")
    assert _digest(path) == before  # the user's file is read, never written


def test_fine_tuned_head_is_rebuilt_to_fit(tmp_path):
    import torchvision

    tuned = torchvision.models.resnet18(num_classes=10)
    torch.save(tuned.state_dict(), tmp_path / "ten.pth")
    loaded = padlib.load_model(f"resnet18={tmp_path / 'ten.pth'}")
    assert loaded.fc.out_features == 10 and _same_weights(tuned, loaded)
    assert padlib.predict(loaded, torch.zeros(1, 3, 64, 64), k=3)["class_name"].tolist() != []


def test_spec_with_pretrained_false_is_the_random_init_of_the_architecture(trained):
    _, files = trained
    control = padlib.load_model(f"resnet18={files['plain']}", pretrained=False)
    assert control.padlib_name == "resnet18" and control.padlib_weights is None
    copy = padlib.models.random_init_copy(padlib.load_model(f"resnet18={files['plain']}"), seed=0)
    assert type(copy).__name__ == "ResNet"


def _error(spec, **kw) -> str:
    with pytest.raises(padlib.PadlibError) as e:
        padlib.load_model(spec, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_unreadable_and_wrong_files_are_one_clear_line(trained, tmp_path):
    _, files = trained
    assert "does not exist" in _error(f"resnet18={tmp_path / 'nope.pth'}")
    assert "is a folder" in _error(f"resnet18={tmp_path}")
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    assert f"checkpoint '{junk}' (16 bytes) is not a PyTorch (torch.save) or .safetensors weights file" \
        in _error(f"resnet18={junk}")
    bad_st = tmp_path / "junk.safetensors"
    bad_st.write_bytes(b"\x00" * 16)
    assert f"checkpoint '{bad_st}' (16 bytes) is not a" in _error(f"resnet18={bad_st}")
    pickled = tmp_path / "whole.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)
    msg = _error(f"resnet18={pickled}")
    assert "Python objects besides tensors" in msg and "state_dict()" in msg
    empty = tmp_path / "empty.pth"
    torch.save({}, empty)
    assert "not a state dict" in _error(f"resnet18={empty}")


def test_checkpoint_of_another_architecture_names_counts_and_first_key(trained):
    _, files = trained
    msg = _error(f"resnet34={files['plain']}")  # resnet34 has more blocks: keys missing from the file
    assert "does not match the architecture 'resnet34'" in msg and "96 key(s) of the model missing" in msg
    assert "first: 'layer1.2.conv1.weight'" in msg
    msg = _error(f"mobilenet_v2={files['plain']}")
    assert "key(s) in the file that the model lacks (first: 'conv1.weight')" in msg


def test_shape_mismatch_names_the_first_key(tmp_path):
    import torchvision

    wide = torchvision.models.resnet18()
    state = wide.state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    msg = _error(f"resnet18={tmp_path / 'shape.pth'}")
    assert "1 shape mismatch(es)" in msg and "'conv1.weight' is (64, 3, 3, 3) in the file, (64, 3, 7, 7)" in msg


def test_bad_spec_and_argument_combinations(trained):
    _, files = trained
    assert "NAME=PATH" in _error("=weights.pth")
    assert "pass the checkpoint once" in _error(f"resnet18={files['plain']}", weights=files["plain"])
    assert "pass one of them" in _error("resnet18", weights=files["plain"], pretrained=False)
    assert "weights must be" in _error("resnet18", weights=3)
