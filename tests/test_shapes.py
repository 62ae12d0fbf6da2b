import pytest
import torch
from torch.export import Dim

from pt2kit.errors import InputSpecError
from pt2kit.shapes.spec import DimEntry, dynamic_shapes_code, parse_dynamic, to_dynamic_shapes


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


@pytest.mark.parametrize(
    "text, expected",
    [
        ("y:1=2*seq", DimEntry("y", 1, "seq", scale=2)),
        ("y:1=seq*2", DimEntry("y", 1, "seq", scale=2)),
        ("y:1=seq+1", DimEntry("y", 1, "seq", offset=1)),
        ("y:1=seq-3", DimEntry("y", 1, "seq", offset=-3)),
        ("x:0=2*half[1,32]", DimEntry("x", 0, "half", 1, 32, scale=2)),
        ("x:-1=4*n+2[,8]", DimEntry("x", -1, "n", None, 8, scale=4, offset=2)),
    ],
)
def test_derived_dims(text, expected):
    (entry,) = parse_dynamic(text).entries
    assert entry == expected
    assert parse_dynamic(str(entry)).entries == (entry,)  # str() is the grammar again


@pytest.mark.parametrize(
    "text, column",
    [
        ("x:0=2*", 7),  # nothing after the multiplier
        ("x:0=2x", 6),  # multiplier without `*`
        ("x:0=b+", 7),  # offset missing
        ("x:0=2*b*3", 8),  # two multipliers
        ("x:0=0*b", 5),  # zero multiplier
        ("x:0=for", 5),  # a keyword is not a name
        ("x:0=2*auto", 7),  # auto cannot be derived
        ("x:0=auto[1,4]", 9),  # no range on auto
        ("x:a=batch", 3),  # dim index
        (":0=batch", 1),  # input name
        ("x:0=batch[1,64", 15),  # unclosed range
        ("x:0=batch[1-64]", 12),
        ("x:0=b[5,2]", 6),  # empty range: column of `[`
    ],
)
def test_malformed_forms_point_at_column(text, column):
    with pytest.raises(InputSpecError, match=f"column {column}\\b"):
        parse_dynamic(text)


def test_dim_given_twice_and_conflicting_ranges_are_errors():
    with pytest.raises(InputSpecError, match="`x:0` is given twice"):
        parse_dynamic("x:0=a,x:0=b")
    with pytest.raises(InputSpecError, match="two different ranges"):
        parse_dynamic("x:0=a[1,4],y:0=a[1,8]")


def test_derived_dims_become_torch_derived_dims_of_one_root():
    spec = parse_dynamic("x:1=n[1,16],y:1=2*n,z:0=n+1")
    x, y, z = torch.zeros(2, 3), torch.zeros(2, 6), torch.zeros(4)
    shapes = to_dynamic_shapes(spec, ["x", "y", "z"], (x, y, z), {})
    root = shapes["x"][1]
    assert shapes["y"][1].root is root and shapes["z"][0].root is root

    class Model(torch.nn.Module):
        def forward(self, x, y, z):
            return torch.cat([x, x], 1) + y, z[1:].sum() + x.sum()

    ep = torch.export.export(Model(), (x, y, z), dynamic_shapes=shapes)
    assert {str(v.lower) for v in ep.range_constraints.values()} >= {"1", "2"}


def test_code_for_derived_and_auto_entries_is_valid_python():
    code = parse_dynamic("x:0=2*half[1,32],y:0=half+1,z:0=auto").code()
    scope: dict = {}
    exec(compile(code, "<spec>", "exec"), scope)
    assert scope["half"].min == 1 and scope["half"].max == 32
    assert scope["dynamic_shapes"]["y"][0].root is scope["half"]
    assert scope["dynamic_shapes"]["z"][0] is Dim.AUTO


def test_malformed_dynamic_at_the_cli_is_one_line_exit_2(cli, tmp_path):
    from conftest import case, check_one_line_error

    result = cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "m.pt2", "--dynamic", "input:0=batch[1;64]")
    check_one_line_error(result, "column 16", "found `;`", "input:0=batch[1;64]")
    assert not (tmp_path / "m.pt2").exists()
