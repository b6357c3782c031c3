"""POST /similar-titles: the notebook's "sherlock" probe as a call, the known titles nearest to any title."""

from __future__ import annotations

from contract.index import ServingIndex, title_token

from .deployed import DeployedRun, Invoke, Outcome
from .endpoints import title_vectors
from .parsing import SimilarRequest


def similar_titles(run: DeployedRun, request: SimilarRequest, invoke: Invoke) -> Outcome:
    """The k known titles most similar to each requested title (known or made up), by cosine similarity.

    A known title is not listed among its own neighbours. Known titles' vectors come from the title table;
    the others from one BlazingText call.
    """
    index, table = run.index, run.titles
    tokens = [title_token(title) for title in request.titles]
    vectors, sent_words = title_vectors(table, tokens, invoke)
    queries = [(token, vector) for token in dict.fromkeys(tokens) if (vector := vectors[token]) is not None]
    usable = [token for token, _ in queries]
    answers = table.nearest([vector for _, vector in queries], request.k, exclude=usable)
    found = dict(zip(usable, answers, strict=True))
    results = []
    for title, token in zip(request.titles, tokens, strict=True):
        results.append(
            {
                "title": title,
                "title_token": token,
                "known": token in table.rows,
                "similar": [
                    {"title": tok, "product_id": _product_id(index, tok), "similarity": sim}
                    for tok, sim in found.get(token, [])
                ],
            }
        )
    counts = {"titles": len(tokens), "blazingtext_words": sent_words, "k": request.k}
    return Outcome(body={"run_id": run.run_id, "results": results}, counts=counts)


def _product_id(index: ServingIndex, token: str) -> str | None:
    row = index.title_rows.get(token)
    return None if row is None else index.product_ids[row]
