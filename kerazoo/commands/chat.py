"""``kerazoo chat RUN_DIR``: a multi-turn conversation with an instruction-tuned (``sft``) model.

Each line read from stdin is a user turn; the reply streams to stdout as it
is decoded and ends at the end of the assistant's turn. The exchanges so far
are the context of the next reply; the oldest are dropped when they no
longer fit the model's context. An empty line or end of input quits.
"""

import sys


def cmd_chat(args):
    """Runs ``kerazoo chat``.

    Args:
        args: the parsed command line.

    Returns:
        The exit status.
    """
    from kerazoo.decoding.sampling import SamplerSpec
    from kerazoo.inference import chat
    from kerazoo.training.runner import load_run

    if args.max_new_tokens is not None and args.max_new_tokens <= 0:
        raise ValueError(f"--max-new-tokens must be positive, got {args.max_new_tokens}")
    model = load_run(args.run)
    chat.chat_tokenizer(model)  # not an sft model: one line, before reading anything
    context = getattr(model, "max_length", None)
    max_new = args.max_new_tokens or (min(64, context // 2) if context else 64)
    kind = "temperature" if args.temperature else "greedy"
    spec = SamplerSpec(kind, float(args.temperature or 1.0), 50, 0.9, 1).validate()
    interactive = sys.stdin.isatty()
    if interactive:
        print("kerazoo chat: type a message and press Enter; an empty line or Ctrl-D quits.", file=sys.stderr)
    turns = []
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line or not line.strip():
            break
        prompt = args.prompt_format.replace("{}", line.strip())
        pieces = []
        for piece in chat.stream_reply(model, turns if not args.no_history else [], prompt, max_new,
                                       spec, seed=args.seed + len(turns)):
            pieces.append(piece)
            print(piece, end="", flush=True)
        print(flush=True)
        turns.append((prompt, "".join(pieces)))
    return 0
