"""What the tokenizer tests share: a small mixed corpus, sample text and helpers."""

from pydoc_data.topics import topics

# A few KB of English (Python's own reference text) and some Chinese.
ENGLISH_DOCS = [topics[name] for name in sorted(topics)][:40]
ENGLISH = "".join(ENGLISH_DOCS)[:30000]
CHINESE = (
    "语言模型根据前面的文字预测下一个词。我们今天学习中文，明天学习英文。"
    "北京是中国的首都，上海是一个很大的城市。\n"
    "你好，世界！今天天气很好，我们去公园散步吧。学而时习之，不亦说乎？"
)
CORPUS = [ENGLISH[i : i + 3000] for i in range(0, len(ENGLISH), 3000)]
CORPUS += [CHINESE] * 3

# Trained sizes the corpus supports for each kind (None: the kind's own).
VOCAB_SIZES = {
    "byte": None,
    "char": None,
    "wordpiece": 400,
    "unigram": 800,
    "bpe": 800,
}
TRAINED_KINDS = ("char", "wordpiece", "unigram", "bpe")

# Mixed text with newlines, tabs, double spaces, CJK and an emoji.
MIXED = (
    "The quick brown fox jumps over the lazy dog.\n"
    "\tdef f(x):  return x ** 2  # 42\n\n"
    "语言模型可以生成文本。你好，世界！ 😀\n"
)


def ids_of(tokenizer, text):
    """The token ids of one text as a Python list."""
    return tokenizer.tokenize(text).numpy().tolist()


def text_of(tokens):
    """A scalar string tensor as str."""
    return tokens.numpy().decode("utf-8")


def round_trip(tokenizer, text):
    """Tokenizes then detokenizes ``text``."""
    return text_of(tokenizer.detokenize(tokenizer.tokenize(text)))


def squash(text):
    """``text`` without any whitespace."""
    return "".join(text.split())
