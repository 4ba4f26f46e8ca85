#!/usr/bin/env python3
r"""Reference token ids for a GGUF file's own tokenizer, for concord-ml's `GgufTokenizer` tests.

    python scripts/gguf_tokenizer_reference.py MODEL.gguf OUT.json [--reference llama.cpp|transformers]

Tokenizes a fixed list of texts (below) with a tokenizer that is not ours and writes
`{"reference": ..., "model_sha256": ..., "cases": [{"text": ..., "ids": [...]}]}`, ids without
BOS, special tokens written in the text (`<|im_start|>`, `<start_of_turn>`) parsed as such.

References:

- `llama.cpp` (default): llama.cpp's own tokenizer through llama-cpp-python
  (`pip install llama-cpp-python`, which compiles llama.cpp), loading only the vocabulary,
  `tokenize(text, add_bos=False, special=True)`. llama.cpp is where GGUF comes from: its
  tokenizer reads exactly these metadata keys, and is what GGUF files are made to run with.
- `transformers`: Hugging Face transformers' GGUF loading,
  `AutoTokenizer.from_pretrained(dir, gguf_file=name)` (`pip install "transformers<5" gguf`).
  It wants PyTorch only to dequantize tensors, which a tokenizer never does, so the check is
  bypassed here instead of installing torch. Known to be wrong for Gemma 3 (it rebuilds
  that SentencePiece-BPE vocabulary as a Unigram model: "Hello world" comes out as
  `Hello ▁w or ld`, not `Hello ▁world`: 29 of the 33 texts differ from llama.cpp), and it
  ignores `tokenizer.ggml.pre` (SmolLM2's "smollm" splits every \p{N} character, so " ½" is
  two tokens in llama.cpp and one in transformers: 32 of 33 agree). A second opinion on
  byte-level BPE files only.

`--compare` also runs the other reference and prints the cases where the two disagree.
"""

import argparse
import hashlib
import json
import os
import sys

# Fixed on purpose: the fixtures committed under crates/ml/tests/fixtures are these texts.
TEXTS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "trailing space ",
    "multiple   spaces   between    words",
    "   ",
    "line one\nline two\n\nline four",
    "tab\tseparated\tvalues\n\t\tindented",
    "\n\n\nleading newlines and trailing\n\n",
    "Windows\r\nline endings\r\n",
    "Emoji: 😀 😂 👍🏽 ❤️",
    "Family: 👨‍👩‍👧‍👦 and 🏳️‍🌈 and 🧑🏽‍💻",
    "Flags: 🇫🇷🇯🇵🇺🇸 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "日本語のテキストと中文文本，还有한국어 텍스트。",
    "مرحبا بالعالم، كيف حالك؟",
    "Café naïve résumé — Ærøskøbing, Łódź, São Paulo, Ñandú",
    "Привет мир, Γειά σου κόσμε, नमस्ते दुनिया, สวัสดีชาวโลก",
    'fn main() {\n    let x: Vec<u32> = vec![1, 2, 3];\n    println!("{:?}", x);\n}\n',
    "def f(x):\n    if x > 0:\n        return x ** 2\n    return -x\n",
    "1234567 and 3.14 and 0.001 and 1,000,000 and 2024-01-31 and x1y22z333",
    "Visit https://example.com/path?query=1&b=two#frag or http://localhost:8080/",
    "contact@example.org #hashtag @user_name",
    "I'm sure you've seen it, they'll say it's John's. DON'T",
    "Wait... what?! (yes) [no] {maybe} \"quotes\" 'single' `tick`",
    "∑ x² ≤ ∞ ± √2 ≈ 1.414 → ½",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa !!!!!!!!!! ..........",
    "ctrl\u0001char, nbsp\u00a0here, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 🦀 and \u2028sep",
    "<table><tr><td>cell</td></tr></table> <b>bold</b>",
    "# Title\n\n- item 1\n- item 2\n\n**bold** _it_ > quote",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\nIt is 4.<end_of_turn>\n",
    "Hi <|im_end|> there <start_of_turn> x",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def llama_cpp_reference(path):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)

    def encode(text):
        return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return f"llama.cpp via llama-cpp-python {llama_cpp.__version__} (vocab_only, add_bos=False, special=True)", encode


def transformers_reference(path):
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    # Metadata-only loading needs no tensors, hence no torch; the guard asks for it anyway.
    gguf_utils.is_torch_available = lambda: True
    import gguf
    import tokenizers

    tok = transformers.AutoTokenizer.from_pretrained(
        os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path)
    )

    def encode(text):
        return tok.encode(text, add_special_tokens=False)

    name = (
        f"transformers {transformers.__version__} AutoTokenizer.from_pretrained(gguf_file=...), "
        f"tokenizers {tokenizers.__version__}, gguf {gguf.__version__}"
        if hasattr(gguf, "__version__")
        else f"transformers {transformers.__version__} AutoTokenizer.from_pretrained(gguf_file=...), "
        f"tokenizers {tokenizers.__version__}"
    )
    return name, encode


REFERENCES = {"llama.cpp": llama_cpp_reference, "transformers": transformers_reference}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--reference", choices=sorted(REFERENCES), default="llama.cpp")
    ap.add_argument("--compare", action="store_true", help="also run the other reference and report disagreements")
    args = ap.parse_args()

    name, encode = REFERENCES[args.reference](args.gguf)
    cases = [{"text": t, "ids": [int(i) for i in encode(t)]} for t in TEXTS]
    out = {"reference": name, "model": os.path.basename(args.gguf), "model_sha256": sha256(args.gguf), "cases": cases}
    with open(args.out, "w", encoding="utf-8") as f:
        # One case a line: readable diffs when a fixture is regenerated.
        head = {k: v for k, v in out.items() if k != "cases"}
        f.write(json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ',\n "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n ]\n}\n")
    print(f"{len(cases)} cases from {name} -> {args.out}")

    if args.compare:
        other = next(r for r in REFERENCES if r != args.reference)
        other_name, other_encode = REFERENCES[other](args.gguf)
        differ = 0
        for case in cases:
            ids = [int(i) for i in other_encode(case["text"])]
            if ids != case["ids"]:
                differ += 1
                print(f"differs: {case['text']!r}\n  {args.reference}: {case['ids']}\n  {other}: {ids}")
        print(f"{other_name}: {len(cases) - differ}/{len(cases)} cases agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
