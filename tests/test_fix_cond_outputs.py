"""The rule that rewrites a torch.cond's branch outputs on torch's verdict (pt2kit.rewrite.cond_outputs), on text."""

import textwrap

from pt2kit.rewrite.cond_outputs import OutputProblem, output_problem, rewrite_cond_outputs

SOURCE = textwrap.dedent('''\
    def forward(self, x, y):
        def _if_c(x, y):
            h = self.keep(x)
            z = x * 2
            return h, z, y.clone(), x + 1

        def _if_not_c(x, y):
            return x.t(), torch.cond(x.sum() > 1, a, b, (x,)), y[:2], 0
        out = torch.cond(x.sum() > 0, _if_c, _if_not_c, (x, y))
        return out
''')


def test_alias_clones_what_may_alias_and_leaves_copies_and_arithmetic():
    text, condition = rewrite_cond_outputs(SOURCE, 9, OutputProblem.ALIAS)
    assert condition == "x.sum() > 0"
    assert "return h.clone(), z, y.clone(), x + 1" in text
    assert "return x.t().clone(), torch.cond(x.sum() > 1, a, b, (x,)), y[:2].clone(), 0" in text
    assert text.splitlines()[2] == SOURCE.splitlines()[2]  # other lines kept byte for byte
    assert rewrite_cond_outputs(text, 9, OutputProblem.ALIAS) is None  # nothing left to clone


def test_layout_makes_every_output_contiguous():
    text, _ = rewrite_cond_outputs(SOURCE, 9, OutputProblem.LAYOUT)
    assert "return h.contiguous(), z.contiguous(), y.clone(memory_format=torch.contiguous_format), (x + 1).contiguous()" in text
    assert "return x.t().contiguous(), torch.cond(x.sum() > 1, a, b, (x,)), y[:2].contiguous(), 0" in text


def test_lambdas_and_calls_whose_branches_are_elsewhere():
    src = "def forward(self, x):\n    return torch.cond(x.sum() > 0, lambda x: x, self.other, (x,))\n"
    text, _ = rewrite_cond_outputs(src, 2, OutputProblem.ALIAS)
    assert "lambda x: x.clone(), self.other" in text
    assert rewrite_cond_outputs("def forward(self, x):\n    return torch.cond(p, self.a, self.b, (x,))\n", 2, OutputProblem.ALIAS) is None
    assert rewrite_cond_outputs("def forward(self, x):\n    return x\n", 2, OutputProblem.ALIAS) is None


def test_torch_messages_name_the_problem():
    assert output_problem("Encountered aliasing during higher order op tracing") is OutputProblem.ALIAS
    assert output_problem("Input-to-output aliasing detected at nodes a and b") is OutputProblem.ALIAS
    assert output_problem("The sorted order of strides of the two branches' output doesn't match.") is OutputProblem.LAYOUT
    assert output_problem("It seems one of cond's output stride is not a simple accumulative multiplication of sizes") is OutputProblem.LAYOUT
    assert output_problem("Expected true_fn_output and false_fn_output to have same metadata") is None
