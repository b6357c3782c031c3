"""Export the known-title vector table of a run (serving/), once, from the trained BlazingText vectors.

Reads vectors.txt (word2vec text format) as a stream, by itself or inside the BlazingText model.tar.gz, keeps
the tokens that are titles of known products (products.tsv of the run's index), and writes
titles.txt (one token per line), titles.f32 (row-major little-endian float32, rows L2-normalized) and
titles.json {dim, count}, titles.json last. No numpy (the stdlib and the kit): it runs in a pipeline Lambda
(`handler`) without the numpy layer.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tarfile
import time
from array import array
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from contract import layout
from contract.index import INDEX_FILES, parse_index
from lambdas.kit import storage
from lambdas.kit.invocation import lambda_handler
from lambdas.kit.logs import LOGGER


@dataclass(frozen=True)
class TitleTableFiles:
    titles_txt: bytes
    titles_f32: bytes
    titles_json: bytes
    count: int
    dim: int
    vocabulary: int
    """Tokens in vectors.txt."""
    zero_vectors: int
    """Known titles left out because their vector is zero (no direction to compare)."""


def build_title_table(lines: Iterable[bytes], known_tokens: Collection[str]) -> TitleTableFiles:
    """vectors.txt lines -> the three files; ValueError names the line that is not in the format."""
    rows = iter(lines)
    header = next(rows, b"").split()
    if len(header) != 2 or not header[0].isdigit() or not header[1].isdigit() or int(header[1]) < 1:
        raise ValueError(f"vectors.txt line 1: {b' '.join(header)[:60]!r} is not '<count> <dim>'")
    dim = int(header[1])
    tokens: list[str] = []
    values = array("f")
    vocabulary = zero = 0
    for number, line in enumerate(rows, start=2):
        word, _, rest = line.partition(b" ")
        if not word.strip():
            continue
        vocabulary += 1
        token = word.decode("utf-8", errors="replace")
        if token not in known_tokens:
            continue
        try:
            vector = [float(v) for v in rest.split()]
        except ValueError:
            raise ValueError(f"vectors.txt line {number}: a value of {token!r} is not a number") from None
        if len(vector) != dim:
            raise ValueError(f"vectors.txt line {number}: {len(vector)} values for {token!r}, expected {dim}")
        norm = math.sqrt(math.fsum(v * v for v in vector))
        if not math.isfinite(norm):
            raise ValueError(f"vectors.txt line {number}: the vector of {token!r} is not finite")
        if norm == 0.0:
            zero += 1
            continue
        tokens.append(token)
        values.extend(v / norm for v in vector)
    if sys.byteorder == "big":
        values.byteswap()
    return TitleTableFiles(
        titles_txt="".join(f"{t}\n" for t in tokens).encode("utf-8"),
        titles_f32=values.tobytes(),
        titles_json=json.dumps({"dim": dim, "count": len(tokens)}).encode("utf-8"),
        count=len(tokens),
        dim=dim,
        vocabulary=vocabulary,
        zero_vectors=zero,
    )


def _lines(stream: IO[bytes], chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Lines (without their newline) of any readable binary stream, a chunk at a time."""
    pending = b""
    while chunk := stream.read(chunk_bytes):
        *complete, pending = (pending + chunk).split(b"\n")
        yield from complete
    if pending:
        yield pending


@contextlib.contextmanager
def vectors_lines(model_artifact_uri: str) -> Iterator[Iterator[bytes]]:
    """The lines of vectors.txt from a model.tar.gz, a vectors.txt, or a folder holding vectors.txt."""
    uri = model_artifact_uri
    if uri.endswith("/"):
        uri = layout.under(uri, "vectors.txt")
    with contextlib.closing(storage.open_stream(uri)) as stream:
        if not uri.endswith((".tar.gz", ".tgz")):
            yield _lines(stream)
            return
        # Stream mode ("r|gz"): members are read in order without seeking, so S3 bodies stream through.
        with tarfile.open(fileobj=stream, mode="r|gz") as archive:
            for member in archive:
                if member.isfile() and os.path.basename(member.name) == "vectors.txt":
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        yield _lines(extracted)
                        return
        raise ValueError(f"{uri}: no vectors.txt in the archive")


def known_title_tokens(index_uri: str) -> set[str]:
    """The title tokens of the run's known products."""
    index = parse_index(*(storage.read_bytes(layout.under(index_uri, name)) for name in INDEX_FILES))
    return set(index.title_rows)


def export_title_table(model_artifact_uri: str, index_uri: str, output_uri: str) -> dict[str, Any]:
    """Build the run's title table and write it under output_uri; a summary for the pipeline's state."""
    known = known_title_tokens(index_uri)
    with vectors_lines(model_artifact_uri) as lines:
        table = build_title_table(lines, known)
    if table.count == 0:
        raise ValueError(
            f"{model_artifact_uri}: none of the {table.vocabulary} vectors is the title of a known product "
            f"of {index_uri}"
        )
    # titles.json last: a reader that finds it finds the other two complete.
    txt, f32, meta = layout.TITLE_TABLE_FILES
    storage.write_bytes(layout.under(output_uri, txt), table.titles_txt, content_type="text/plain")
    storage.write_bytes(layout.under(output_uri, f32), table.titles_f32)
    storage.write_bytes(layout.under(output_uri, meta), table.titles_json, content_type="application/json")
    return {
        "title_table_uri": output_uri,
        "count": table.count,
        "dim": table.dim,
        "vocabulary": table.vocabulary,
        "known_titles": len(known),
        "known_titles_without_vector": len(known) - table.count - table.zero_vectors,
        "zero_vectors": table.zero_vectors,
    }


@lambda_handler
def handler(event: Any, context: Any) -> dict[str, Any]:
    """Pipeline Lambda: {"model_artifact_uri", "index_uri", "output_uri"} -> the export's summary."""
    started = time.perf_counter()
    names = ("model_artifact_uri", "index_uri", "output_uri")
    if not isinstance(event, dict):
        raise ValueError(f"event must be an object with {', '.join(names)}")
    for name in names:
        if not isinstance(event.get(name), str) or not event[name]:
            raise ValueError(
                f"event.{name} is {event.get(name)!r}: a non-empty s3:// or file:// URI is required"
            )
    summary = export_title_table(event["model_artifact_uri"], event["index_uri"], event["output_uri"])
    LOGGER.info(
        "exported the title table",
        extra={
            "request_id": getattr(context, "aws_request_id", None),
            "route": "export-title-table",
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "counts": summary,
        },
    )
    return summary
