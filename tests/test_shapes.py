import pytest
import torch
from torch.export import Dim

from pt2kit.errors import InputSpecError
from pt2kit.shapes import DimEntry, dynamic_shapes_code, parse_dynamic, to_dynamic_shapes


def test_single_entry():
    assert parse_dynamic("x:0=batch[1,64]").entries == (DimEntry("x", 0, "batch", 1, 64),)


def test_several_dims_shared_names_and_open_bounds():
    spec = parse_dynamic("ids:0=batch[1,32],mask:0=batch,ids:1=seq[2,],x:0=auto")
    assert [str(e) for e in spec.entries] == ["ids:0=batch[1,32]", "mask:0=batch", "ids:1=seq[2,]", "x:0=auto"]


def test_bare_auto():
    assert parse_dynamic("auto").all_auto


@pytest.mark.parametrize(
    "text, column",
    [("x:0=batch[1;64]", 12), ("x:0=batch[1,64]y", 16), ("x0=batch", 3), ("x:0=batch,", 11)],
)
def test_malformed_spec_points_at_column(text, column):
    with pytest.raises(InputSpecError, match=f"column {column}"):
        parse_dynamic(text)


def test_shared_name_is_one_dim_object():
    spec = parse_dynamic("ids:0=batch[1,32],mask:0=batch")
    shapes = to_dynamic_shapes(spec, ["ids", "mask"], (torch.zeros(2, 3), torch.zeros(2, 3)), {})
    assert shapes["ids"][0] is shapes["mask"][0]
    assert isinstance(shapes["ids"][0], type(Dim("b")))


def test_unknown_input_and_missing_dim_are_errors():
    with pytest.raises(InputSpecError, match="no input `y`"):
        to_dynamic_shapes(parse_dynamic("y:0=b"), ["x"], (torch.zeros(2),), {})
    with pytest.raises(InputSpecError, match="no dim 3"):
        to_dynamic_shapes(parse_dynamic("x:3=b"), ["x"], (torch.zeros(2),), {})


def test_code_is_valid_python_that_builds_the_dims():
    code = dynamic_shapes_code(parse_dynamic("x:0=batch[1,64],y:0=batch,x:1=seq"))
    scope: dict = {}
    exec(compile(code, "<spec>", "exec"), scope)
    assert scope["dynamic_shapes"]["x"][0] is scope["dynamic_shapes"]["y"][0]
