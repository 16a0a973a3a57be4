"""The ``kerazoo`` sub-commands, one function per command, grouped by pipeline stage.

    train      train, compare, report
    prepare    prepare (the token store)
    decode     generate, translate, classify; chat (its own module)
    serve      export, predict, soak
    lab        bench, curves, leaderboard, models, import-hf

``kerazoo.cli`` parses the command line and imports this package only then,
so ``kerazoo --help`` loads no framework; each command imports what it needs.
"""

from kerazoo.commands import chat, decode, lab, prepare, serve, train

COMMANDS = {
    "train": train.cmd_train,
    "compare": train.cmd_compare,
    "report": train.cmd_report,
    "prepare": prepare.cmd_prepare,
    "generate": decode.cmd_generate,
    "translate": decode.cmd_translate,
    "classify": decode.cmd_classify,
    "chat": chat.cmd_chat,
    "export": serve.cmd_export,
    "predict": serve.cmd_predict,
    "soak": serve.cmd_soak,
    "bench": lab.cmd_bench,
    "curves": lab.cmd_curves,
    "leaderboard": lab.cmd_leaderboard,
    "models": lab.cmd_models,
    "import-hf": lab.cmd_import_hf,
}
