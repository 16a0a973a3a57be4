"""``kerazoo generate``, ``translate`` and ``classify``: a trained model answers texts."""

import json
import os
import sys


def _sampling_kwargs(args):
    """generate()/stream() keyword arguments from the command line."""
    return dict(
        max_new_tokens=args.max_new_tokens, sampler=args.sampler, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, stop=args.stop, seed=args.seed,
    )


def _stream_one(model, prompt, kwargs, no_stream):
    """Prints a prompt and its continuation, piece by piece as decoded.

    The first piece is produced before anything is printed, so bad settings
    fail without leaving the prompt half-printed on stdout.
    """
    from kerazoo.inference.generate import generate, stream

    if no_stream or kwargs["sampler"] == "beam":
        text = generate(model, prompt, **kwargs)
        print(prompt + text, flush=True)
        return
    pieces = stream(model, prompt, **{k: v for k, v in kwargs.items() if k != "num_beams"})
    first = next(pieces, "")
    print(prompt + first, end="", flush=True)
    for piece in pieces:
        print(piece, end="", flush=True)
    print(flush=True)


def _read_prompts(path):
    from kerazoo.training.inputs import MAX_PROMPTS_BYTES, read_text

    # A regular file of at most 16 MiB: a fifo or /dev/zero would never end.
    prompts = read_text(path, "prompts file", MAX_PROMPTS_BYTES).split("\n")
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise ValueError(f"prompts file {path} holds no prompts")
    return prompts


def cmd_generate(args):
    """Runs ``kerazoo generate``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.inference.generate import generate
    from kerazoo.training.runner import load_run

    model = load_run(args.run)
    if not callable(getattr(model, "init_cache", None)):
        raise ValueError(f"{args.run} holds a {type(model).__name__}, which does not generate text "
                         "(use 'kerazoo classify' for classifiers, 'kerazoo translate' for seq2seq)")
    if args.quantize:
        from kerazoo.models.quantize import quantize

        quantize(model, args.quantize)
    kwargs = _sampling_kwargs(args)
    kwargs["num_beams"] = args.num_beams
    if args.prompts_file:
        prompts = _read_prompts(args.prompts_file)
        for prompt, text in zip(prompts, generate(model, prompts, **kwargs)):
            print(json.dumps({"prompt": prompt, "completion": text}, ensure_ascii=False))
        return 0
    if args.interactive:
        print("kerazoo: type a prompt and press Enter; an empty line or Ctrl-D quits.", file=sys.stderr)
        while True:
            try:
                prompt = input("> ")
            except EOFError:
                break
            if not prompt:
                break
            _stream_one(model, prompt, kwargs, args.no_stream)
        return 0
    _stream_one(model, args.prompt, kwargs, args.no_stream)
    return 0


def cmd_translate(args):
    """Runs ``kerazoo translate``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.training.runner import load_run
    from kerazoo.inference.translate import translate

    model = load_run(args.run)
    texts = _read_prompts(args.file) if args.file else args.text
    if not texts:
        raise ValueError(f"{args.file} holds no texts")
    max_new_tokens = args.max_new_tokens or getattr(model, "max_length", 2) - 1
    outputs = translate(model, texts, max_new_tokens=max_new_tokens, num_beams=args.num_beams)
    for text, output in zip(texts, outputs):
        print(json.dumps({"text": text, "translation": output}, ensure_ascii=False) if args.file else output)
    return 0




def cmd_classify(args):
    """Runs ``kerazoo classify``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.training.tasks.classify import classify

    for text, result in zip(args.text, classify(args.run, args.text)):
        print(json.dumps({"text": text, **result}, ensure_ascii=False))
    return 0
