"""``probekit train`` is registered and parses its options."""

from probekit.cli import build_parser


def test_train_command_is_registered():
    args = build_parser().parse_args(["train", "--corpus", "c/", "--out", "runs/x", "--method",
                                      "mas-lora", "--objective", "fused", "--objective-args",
                                      '{"dro_mode": "online"}', "--grad-accum", "2"])
    assert args.method == "mas-lora" and args.objective == "fused" and args.grad_accum == 2
    assert args.lr == 4e-5 and args.rank == 16 and args.alpha == 16 and args.dropout == 0.05
    assert callable(args.func)
