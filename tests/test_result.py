import pytest
import torch

from interp.result import Result


def _result():
    return Result(
        torch.arange(6.0).view(2, 3),
        ("layer", "head"),
        "score",
        labels={"head": ["a", "b", "c"]},
        provenance={"method": "test"},
    )


def test_save_load_roundtrip(tmp_path):
    r = _result()
    r.save(tmp_path / "run")
    back = Result.load(tmp_path / "run.json")
    assert torch.equal(back.values, r.values)
    assert back.axes == ("layer", "head") and back.labels == r.labels
    assert back.provenance["method"] == "test" and "interp_version" in back.provenance
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.safetensors"]


def test_sel_and_top():
    r = _result()
    assert r.sel(layer=1).values.tolist() == [3.0, 4.0, 5.0]
    assert r.sel(head="b").values.tolist() == [1.0, 4.0]
    assert r.top(2) == [({"layer": "1", "head": "c"}, 5.0), ({"layer": "1", "head": "b"}, 4.0)]


def test_bad_axes_and_labels():
    with pytest.raises(ValueError, match="one axis name per dimension"):
        Result(torch.zeros(2, 3), ("layer",), "m")
    with pytest.raises(ValueError, match="3 entries but 2 labels"):
        Result(torch.zeros(2, 3), ("layer", "head"), "m", labels={"head": ["a", "b"]})


def test_plot_heatmap():
    fig = _result().plot()
    assert fig.data[0].type == "heatmap"
    assert list(fig.data[0].x) == ["a", "b", "c"]
