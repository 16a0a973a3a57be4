"""Recipe parsing and validation: every mistake names the file and the key."""

import glob

import pytest

from kerazoo.training.recipes import RecipeError, TrainSection, dump_recipe, load_recipe, parse_recipe

MINIMAL = {"model": {"arch": "lstm"}}


def _write(tmp_path, text, name="r.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("path", sorted(glob.glob("recipes/*.toml")))
def test_shipped_recipes_are_valid(path):
    recipe = load_recipe(path)
    assert recipe.data.source and recipe.arch in {"rnn", "gru", "lstm", "gpt", "llama", "bert", "bilstm", "seq2seq"}


def test_shipped_pydocs_recipes_share_tokenizer_settings():
    # The recipes on the pydocs text itself (pydocs_reverse_seq2seq trains on pairs cut from it).
    recipes = [r for r in map(load_recipe, sorted(glob.glob("recipes/pydocs_*.toml"))) if r.data.source == "builtin:pydocs"]
    assert {r.arch for r in recipes} == {"rnn", "gru", "lstm", "gpt", "bert"}
    assert len({(r.data, r.tokenizer) for r in recipes}) == 1


@pytest.mark.parametrize("path, nanogpt", [
    # nanoGPT config/train_shakespeare_char.py: (layers, heads, dim, context, batch, iters, dropout)
    ("recipes/shakespeare_char.toml", (4, 4, 128, 64, 12, 2000, 0.0)),  # with the README's CPU overrides
    ("recipes/shakespeare_char_gpu.toml", (6, 6, 384, 256, 64, 5000, 0.2)),
])
def test_shakespeare_recipes_match_nanogpt(path, nanogpt):
    r = load_recipe(path)
    h, t = r.hparams, r.train
    assert (h["num_layers"], h["num_heads"], h["hidden_dim"], h["max_length"], t.batch_size, t.steps, h["dropout"]) == nanogpt
    assert t.seq_len == h["max_length"]  # nanoGPT trains on full blocks
    assert (r.data.split, r.data.val_fraction, r.tokenizer.kind) == ("tail", 0.1, "char")  # first 90% / last 10%
    assert t.windows == "random"  # nanoGPT's get_batch draws every window at a random offset
    assert (t.learning_rate, t.learning_rate * t.min_lr_ratio, t.warmup_steps, t.weight_decay, t.clipnorm) == pytest.approx(
        (1e-3, 1e-4, 100, 0.1, 1.0))
    # nanoGPT's grad_clip is torch's clip_grad_norm_, one norm over all gradients. The GPU recipe keeps
    # Keras' per-weight clip its documented H100 figure was measured with (not re-run on a GPU since).
    assert t.clip_global == (path == "recipes/shakespeare_char.toml")


def test_the_llama_shakespeare_recipe_has_the_gpt_recipes_budget_and_data():
    gpt, llama = load_recipe("recipes/shakespeare_char.toml"), load_recipe("recipes/shakespeare_char_llama.toml")
    assert llama.arch == "llama" and llama.hparams["num_heads"] % llama.hparams["num_kv_heads"] == 0
    assert (llama.data, llama.tokenizer) == (gpt.data, gpt.tokenizer)
    budget = [(r.train.steps, r.train.batch_size, r.train.seq_len, r.train.windows) for r in (gpt, llama)]
    assert budget[0] == budget[1] and budget[1][0] * budget[1][1] * budget[1][2] == 1_536_000


def test_defaults_fill_in_and_name_comes_from_file(tmp_path):
    recipe = load_recipe(_write(tmp_path, '[model]\narch = "gru"\n', "my_run.toml"))
    assert recipe.name == "my_run" and recipe.arch == "gru"
    assert recipe.train.seq_len == 128 and recipe.hparams["hidden_dim"] == 512


def test_dump_round_trips(tmp_path):
    recipe = load_recipe(_write(tmp_path, '[model]\narch = "gpt"\nnum_layers = 2\n[train]\nlearning_rate = 3e-4\n'))
    again = load_recipe(_write(tmp_path, dump_recipe(recipe), "again.toml"))
    assert again.to_dict() == recipe.to_dict()


def test_overrides(tmp_path):
    path = _write(tmp_path, '[model]\narch = "gpt"\n')
    recipe = load_recipe(path, ["train.steps=400", "train.eval_every=100", "model.arch=lstm",
                                'data.source="notes/*.txt"', "train.tensorboard=true"])
    assert recipe.train.steps == 400 and recipe.arch == "lstm"
    assert recipe.data.source == "notes/*.txt" and recipe.train.tensorboard is True


@pytest.mark.parametrize(
    "text, message",
    [
        ('[model]\narch = "gpt"\n[train]\nstepz = 3\n', "unknown key 'train.stepz'"),
        ('[model]\narch = "gpt"\n[trian]\nsteps = 3\n', "unknown key 'trian'"),
        ('[model]\narch = "gpt"\n[train]\nsteps = "many"\n', "'train.steps' must be int"),
        ('[model]\narch = "gpt"\n[train]\nbatch_size = 1.5\n', "'train.batch_size' must be int"),
        ('[model]\narch = "gpt"\n[train]\nbatch_size = -4\n', "'train.batch_size' must be positive"),
        ('[model]\narch = "gpt"\n[train]\nsteps = 1000\neval_every = 300\n', "must be a multiple"),
        ('[model]\narch = "gpt"\nmax_length = 64\n[train]\nseq_len = 128\n', "'train.seq_len' \\(128\\) exceeds the model's context"),
        ('[model]\narch = "transformerxl"\n', "unknown arch 'transformerxl'"),
        ('[model]\narch = "gpt"\nnum_layerz = 2\n', "unknown hyper-parameter 'num_layerz'"),
        ('[model]\narch = "gpt"\n[tokenizer]\nkind = "morse"\n', "'tokenizer.kind' must be one of"),
        ('[model]\narch = "gpt"\n[data]\nval_fraction = 1.5\n', "'data.val_fraction' must be in"),
        ('[data]\nsource = "x.txt"\n', "missing section \\[model\\]"),
        ('name = "../escape"\n[model]\narch = "gpt"\n', "'name' must be letters"),
        ('[model\narch = "gpt"\n', "not valid TOML"),
        ('[model]\narch = "gpt"\n[train]\nwindows = "overlapping"\n', "'train.windows' must be one of packed, random"),
        ('[model]\narch = "bert"\n[train]\nwindows = "random"\n', "'train.windows' 'random' is for causal_lm"),
    ],
)
def test_bad_recipes_name_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(RecipeError, match=message) as info:
        load_recipe(path)
    assert path in str(info.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(str(tmp_path / "nope.toml"))


def test_parse_from_a_dict():
    assert parse_recipe(MINIMAL).arch == "lstm"


@pytest.mark.parametrize("override", ["train.steps", "a.b.c=1", "=3"])
def test_bad_override_syntax(override):
    with pytest.raises(RecipeError, match="expected section.key=value"):
        load_recipe("recipes/pydocs_gpt.toml", [override])


def test_sample_tokens_must_fit_the_context(tmp_path):
    path = _write(tmp_path, '[model]\narch = "gpt"\nmax_length = 32\n[train]\nseq_len = 32\n')
    with pytest.raises(RecipeError, match="'train.sample_tokens' \\(64\\) must be smaller than model.max_length"):
        load_recipe(path)


def test_recipe_path_that_is_a_folder(tmp_path):
    with pytest.raises(RecipeError, match="is a folder"):
        load_recipe(str(tmp_path))


@pytest.mark.parametrize("clip_global, expected", [(False, (0.5, None)), (True, (None, 0.5))])
def test_clip_global_picks_keras_joint_gradient_clip(clip_global, expected):
    from kerazoo.training.optim import make_optimizer

    opt = make_optimizer(TrainSection(clipnorm=0.5, clip_global=clip_global))
    assert (opt.clipnorm, opt.global_clipnorm) == expected
