"""``kerazoo train``, ``compare`` and ``report``: recipes in, run folders and tables out."""

from kerazoo.commands.output import check_out, emit_table


def cmd_train(args):
    """Runs ``kerazoo train``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.training.recipes import load_recipe
    from kerazoo.training.runner import run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    result = run_recipe(recipe, args.runs_dir, resume=args.resume, verbose=0 if args.quiet else 1)
    print_result(result)
    return 0


def print_result(result):
    """Prints a finished run the way its task words it (``Task.summary``).

    Args:
        result: a ``RunResult``.
    """
    from kerazoo.training.tasks import get_task

    for line in get_task(result.metrics.get("task", "causal_lm")).summary(result):
        print(line)


def cmd_compare(args):
    """Runs ``kerazoo compare``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.lab import report
    from kerazoo.training.recipes import load_recipe
    from kerazoo.training.runner import load_run, run_recipe

    check_out(args.out)
    recipes = [load_recipe(path, args.overrides) for path in args.recipes]  # validate all first
    shared, key, paths = None, None, []
    for recipe in recipes:
        this_key = (recipe.data, recipe.tokenizer)
        tokenizer = shared if this_key == key else None
        print(f"== {recipe.name} ({recipe.arch})")
        result = run_recipe(recipe, args.runs_dir, tokenizer=tokenizer, verbose=0 if args.quiet else 1)
        print_result(result)
        shared, key = load_run(result.path).tokenizer, this_key
        paths.append(result.path)
    return emit_table(report.markdown_table(paths), args.out)


def cmd_report(args):
    """Runs ``kerazoo report``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.lab import report

    check_out(args.out)
    return emit_table(report.markdown_table(args.runs), args.out)
