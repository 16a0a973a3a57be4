"""``kerazoo prepare``: tokenize a recipe's corpus once into its token store; ``kerazoo bench data``."""

import os


def cmd_prepare(args):
    """Runs ``kerazoo prepare``: builds (or finds) the recipe's token store (causal_lm) or row store
    (classify, seq2seq, sft) and prints where it is.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.training.recipes import load_recipe
    from kerazoo.training.tasks.causal_lm import prepare_store

    recipe = load_recipe(args.recipe, args.overrides)
    if recipe.task_kind in ("classify", "seq2seq", "sft"):
        from kerazoo.training.tasks import classify, seq2seq, sft

        if recipe.task_kind == "sft":
            rows = sft.exchange_store(recipe, None, print)[0]
        else:
            rows = (classify.row_store(recipe, None, print) if recipe.task_kind == "classify"
                    else seq2seq.prepare_pairs(recipe, None, print)["store"])
        print(f"row store: {rows.path} ({'built' if rows.built else 'reused'})")
        return 0
    if recipe.task_kind != "causal_lm":
        raise ValueError(f"kerazoo prepare builds the stores of causal_lm, classify, seq2seq and sft recipes; "
                         f"{args.recipe} trains '{recipe.task_kind}', which reads its data when it trains")
    prepared = prepare_store(recipe, None, print)
    print(f"token store: {prepared.path} ({'built' if prepared.built else 'reused'})")
    return 0


def bench_data(args, backends=None):
    """``kerazoo bench data``: prepare MB/s and peak RSS at several corpus sizes beside the raw encoder.

    Args:
        args: the parsed command line (``sizes``, ``kinds``, ``train_steps``, ``out``).
        backends: unused (the suite measures tokenization, not a backend).
    """
    from kerazoo.lab import data_suite
    from kerazoo.training.runs import write_json, write_text

    sizes = data_suite.parse_sizes(args.sizes)
    kinds = tuple(k.strip() for k in getattr(args, "kinds", ",".join(data_suite.KINDS)).split(",") if k.strip())
    rows = data_suite.run_all(sizes, args.out, steps=args.train_steps, kinds=kinds)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "data.json"), rows)
    table = data_suite.markdown(rows)
    write_text(os.path.join(args.out, "data.md"), table)
    print(table)
