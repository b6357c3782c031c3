"""Export the known-title vector table of a run (serving/), once, from the trained BlazingText vectors.

Reads vectors.txt (word2vec text format) as a stream, by itself or inside the BlazingText model.tar.gz, keeps
the tokens that are titles of known products (products.tsv of the run's index), and writes
titles.txt (one token per line), titles.f32 (row-major little-endian float32, rows L2-normalized) and
titles.json {dim, count}, titles.json last. From vectors.bin in the same pass it builds, in the same format,
the held-out titles' table (contract.layout.HELD_OUT_TITLE_FILES): the vectors of the known titles the corpus
left out (contract.index.held_out_title), from their n-grams as a new title's are, on which the cold start's
shrinkage is chosen. No numpy (the stdlib and the kit): it runs in a pipeline Lambda (`handler`) without the
numpy layer.
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
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from contract import layout
from contract.index import INDEX_FILES, held_out_title, parse_index
from lambdas.kit import storage
from lambdas.kit.errors import StorageNotFoundError
from lambdas.kit.invocation import lambda_handler
from lambdas.kit.logs import LOGGER
from lambdas.serving.fasttext_bin import FastTextFormatError, read_vectors

VECTORS_TXT = "vectors.txt"
VECTORS_BIN = "vectors.bin"
"""BlazingText's two artifacts: word2vec text format, and fastText's binary model (with subwords)."""


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
    return _table_files(tokens, values, dim, vocabulary=vocabulary, zero_vectors=zero)


def _table_files(
    tokens: list[str], values: array[float], dim: int, *, vocabulary: int, zero_vectors: int
) -> TitleTableFiles:
    """The three files of unit vectors `values` (row-major, len(tokens) x dim)."""
    if sys.byteorder == "big":
        values.byteswap()
    return TitleTableFiles(
        titles_txt="".join(f"{t}\n" for t in tokens).encode("utf-8"),
        titles_f32=values.tobytes(),
        titles_json=json.dumps({"dim": dim, "count": len(tokens)}).encode("utf-8"),
        count=len(tokens),
        dim=dim,
        vocabulary=vocabulary,
        zero_vectors=zero_vectors,
    )


def build_vector_table(vectors: Mapping[str, Sequence[float]], dim: int) -> TitleTableFiles:
    """Tokens and their vectors (fasttext_bin.read_vectors) -> the three files, tokens sorted, zero vectors
    left out; ValueError when a vector is not `dim` long."""
    tokens: list[str] = []
    values = array("f")
    zero = 0
    for token in sorted(vectors):
        vector = vectors[token]
        if len(vector) != dim:
            raise ValueError(f"{len(vector)} values for {token!r}, expected {dim}")
        norm = math.sqrt(math.fsum(v * v for v in vector))
        if norm == 0.0:
            zero += 1
            continue
        tokens.append(token)
        values.extend(v / norm for v in vector)
    return _table_files(tokens, values, dim, vocabulary=len(vectors), zero_vectors=zero)


def _lines(stream: IO[bytes], chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """Lines (without their newline) of any readable binary stream, a chunk at a time."""
    pending = b""
    while chunk := stream.read(chunk_bytes):
        *complete, pending = (pending + chunk).split(b"\n")
        yield from complete
    if pending:
        yield pending


@dataclass(frozen=True)
class ModelTables:
    known: TitleTableFiles
    """The known titles with a trained vector (vectors.txt)."""
    held_out: TitleTableFiles | None
    """The held-out titles' vectors from their n-grams (vectors.bin); None without a vectors.bin."""
    held_out_problem: str | None = None
    """Why there is no held-out table (no vectors.bin, or one that is not a fastText model)."""


def read_model_tables(
    model_artifact_uri: str, known: Collection[str], held_out: Sequence[str]
) -> ModelTables:
    """Both tables from a BlazingText model: a model.tar.gz (one streaming pass, members in any order), a
    folder holding vectors.txt and vectors.bin, or a vectors.txt alone (no held-out table)."""
    uri = model_artifact_uri
    if not uri.endswith("/"):
        with contextlib.closing(storage.open_stream(uri)) as stream:
            if uri.endswith((".tar.gz", ".tgz")):
                return _tables_from_archive(uri, stream, known, held_out)
            return ModelTables(build_title_table(_lines(stream), known), None, f"{uri}: no {VECTORS_BIN}")
    with contextlib.closing(storage.open_stream(layout.under(uri, VECTORS_TXT))) as stream:
        table = build_title_table(_lines(stream), known)
    bin_uri = layout.under(uri, VECTORS_BIN)
    try:
        bin_stream = storage.open_stream(bin_uri)
    except StorageNotFoundError:
        return ModelTables(table, None, f"{bin_uri}: missing")
    with contextlib.closing(bin_stream):
        held, problem = _held_out_table(bin_stream, held_out, uri)
    return _checked(table, held, problem, bin_uri)


def _tables_from_archive(
    uri: str, stream: IO[bytes], known: Collection[str], held_out: Sequence[str]
) -> ModelTables:
    table: TitleTableFiles | None = None
    held: TitleTableFiles | None = None
    problem: str | None = f"{uri}: no {VECTORS_BIN} in the archive"
    # Stream mode ("r|gz"): members are read in order without seeking, so S3 bodies stream through.
    with tarfile.open(fileobj=stream, mode="r|gz") as archive:
        for member in archive:
            name = os.path.basename(member.name)
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is None:
                continue
            if name == VECTORS_TXT:
                table = build_title_table(_lines(extracted), known)
            elif name == VECTORS_BIN:
                held, problem = _held_out_table(extracted, held_out, uri)
    if table is None:
        raise ValueError(f"{uri}: no {VECTORS_TXT} in the archive")
    return _checked(table, held, problem, f"{uri}: {VECTORS_BIN}")


def _held_out_table(
    stream: IO[bytes], held_out: Sequence[str], where: str
) -> tuple[TitleTableFiles | None, str | None]:
    """The held-out titles' table from a vectors.bin stream, or None and why (the message after `where`, the
    model's URI): a model that is not fastText's gives none (the cold start then answers with the user-bias
    prediction; nothing that serves needs it)."""
    try:
        header, vectors = read_vectors(stream, held_out)
    except FastTextFormatError as exc:
        return None, f"{where}: {exc}"
    return build_vector_table(vectors, header.dim), None


def _checked(
    table: TitleTableFiles, held: TitleTableFiles | None, problem: str | None, name: str
) -> ModelTables:
    if held is not None and held.dim != table.dim:
        return ModelTables(table, None, f"{name}: {held.dim} dimensions, {VECTORS_TXT} has {table.dim}")
    return ModelTables(table, held, None if held is not None else problem)


def known_title_tokens(index_uri: str) -> set[str]:
    """The title tokens of the run's known products."""
    index = parse_index(*(storage.read_bytes(layout.under(index_uri, name)) for name in INDEX_FILES))
    return set(index.title_rows)


def _write_table(output_uri: str, names: Sequence[str], table: TitleTableFiles) -> None:
    """The three files, the .json last: a reader that finds it finds the other two complete."""
    txt, f32, meta = names
    storage.write_bytes(layout.under(output_uri, txt), table.titles_txt, content_type="text/plain")
    storage.write_bytes(layout.under(output_uri, f32), table.titles_f32)
    storage.write_bytes(layout.under(output_uri, meta), table.titles_json, content_type="application/json")


def export_title_table(model_artifact_uri: str, index_uri: str, output_uri: str) -> dict[str, Any]:
    """Build the run's title table and the held-out titles' table (contract.layout.HELD_OUT_TITLE_FILES:
    empty when the model has no usable vectors.bin) and write them under output_uri; a summary for the
    pipeline's state."""
    known = known_title_tokens(index_uri)
    held_out = sorted(t for t in known if held_out_title(t))
    tables = read_model_tables(model_artifact_uri, known, held_out)
    table = tables.known
    if table.count == 0:
        raise ValueError(
            f"{model_artifact_uri}: none of the {table.vocabulary} vectors is the title of a known product "
            f"of {index_uri}"
        )
    held = tables.held_out or _table_files([], array("f"), table.dim, vocabulary=0, zero_vectors=0)
    _write_table(output_uri, layout.HELD_OUT_TITLE_FILES, held)
    _write_table(output_uri, layout.TITLE_TABLE_FILES, table)
    summary = {
        "title_table_uri": output_uri,
        "count": table.count,
        "dim": table.dim,
        "vocabulary": table.vocabulary,
        "known_titles": len(known),
        "known_titles_without_vector": len(known) - table.count - table.zero_vectors,
        "zero_vectors": table.zero_vectors,
        "held_out_titles": len(held_out),
        "held_out_with_vector": held.count,
    }
    if tables.held_out_problem:
        summary["held_out_problem"] = tables.held_out_problem
    return summary


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
