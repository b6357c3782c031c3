"""A local SageMaker runtime: InvokeEndpoint over real HTTP, backed by the local twin's trained models.

POST /endpoints/{name}/invocations speaks the built-in algorithms' JSON formats (FM regressor, BlazingText
word vectors), and fails the way the real runtime does, so that boto3's sagemaker-runtime client (pointed
here with endpoint_url) raises the same ClientError codes: ValidationError (400) for an unknown endpoint,
ModelError (424) when the model rejects the input, ThrottlingException (429), InternalFailure (500),
ServiceUnavailable (503). Signatures are not checked.

    with RuntimeServer() as server:
        server.add_endpoint("fm", run / "fm")              # a folder with model.tar.gz (SageMaker FM's)
        server.add_endpoint("blazingtext", run / "blazingtext")   # a folder with vectors.bin (fastText)
        server.inject_faults("fm", 429, count=2)           # the next 2 calls to fm are throttled
        ... boto3.client("sagemaker-runtime", endpoint_url=server.url) ...

    python -m local.runtime_server --endpoint fm=runs/x/fm --endpoint blazingtext=runs/x/blazingtext
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import math
import re
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import numpy as np

from local.embeddings import VECTORS_BIN
from local.fm.model import MODEL_FILE, FmParameters, predict
from local.fm.model import load_model as load_fm

ERROR_CODES = {
    400: "ValidationError",
    424: "ModelError",
    429: "ThrottlingException",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}
_INVOCATIONS = re.compile(r"/endpoints/([^/]+)/invocations")
_ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.service/"
_RECEIVED_KEPT = 100


class ModelInputError(ValueError):
    """The model rejects the request body (the runtime answers ModelError, original status 400)."""


class FmPredictor:
    """The FM container's inference: {"instances": [{"data": {"features": {keys, shape, values}}}, ...]} in,
    {"predictions": [{"score": ...}, ...]} out, scored by local.fm's one scoring routine (in float64)."""

    def __init__(self, model: FmParameters) -> None:
        self.model = model

    @property
    def feature_dim(self) -> int:
        return self.model.feature_dim

    def answer(self, body: Any) -> Any:
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list) or not instances:
            raise ModelInputError('expected {"instances": [...]} with at least one instance')
        keys: list[int] = []
        values: list[float] = []
        indptr = [0]
        for n, instance in enumerate(instances):
            k, x = self._features(instance, n)
            keys.extend(k)
            values.extend(x)
            indptr.append(len(keys))
        scores = predict(self.model, indptr, np.asarray(keys, np.int64), values, dtype=np.float64)
        return {"predictions": [{"score": float(s)} for s in scores]}

    def _features(self, instance: Any, n: int) -> tuple[list[int], list[float]]:
        try:
            features = instance["data"]["features"]
            keys, shape, values = features["keys"], features["shape"], features["values"]
        except (KeyError, TypeError):
            raise ModelInputError(f"instance {n}: expected data.features with keys, shape, values") from None
        if shape != [self.feature_dim]:
            raise ModelInputError(f"instance {n}: shape {shape!r} is not [{self.feature_dim}] (feature_dim)")
        if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values) or not keys:
            raise ModelInputError(f"instance {n}: keys and values must be non-empty lists of the same length")
        if not all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k < self.feature_dim for k in keys
        ):
            raise ModelInputError(f"instance {n}: keys must be integers in [0, {self.feature_dim})")
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise ModelInputError(f"instance {n}: keys must be sorted in ascending order: {keys}")
        if not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in values
        ):
            raise ModelInputError(f"instance {n}: values must be finite numbers")
        return keys, [float(x) for x in values]


class BlazingTextModel:
    """Word vectors from a fastText model (BlazingText's vectors.bin): unseen words get subword vectors."""

    def __init__(self, vectors: Any) -> None:
        self.vectors = vectors  # gensim FastTextKeyedVectors

    @classmethod
    def load(cls, folder: Path) -> BlazingTextModel:
        from gensim.models.fasttext import load_facebook_model  # noqa: PLC0415 (slow import, FM-only runs skip it)

        return cls(load_facebook_model(str(folder / VECTORS_BIN)).wv)

    def answer(self, body: Any) -> Any:
        """{"instances": ["word", ...]} -> [{"vector": [...], "word": word}, ...]"""
        words = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
            raise ModelInputError('expected {"instances": ["word", ...]} with at least one word')
        answers = []
        for word in words:
            try:
                vector = self.vectors[word]
            except KeyError:  # no vocabulary entry and no character n-gram: no vector to give
                vector = np.zeros(self.vectors.vector_size, dtype=np.float32)
            answers.append({"vector": [float(v) for v in vector], "word": word})
        return answers


Model = FmPredictor | BlazingTextModel


def load_model(folder: Path) -> Model:
    """An FM folder holds model.tar.gz (the algorithm's artifact); a BlazingText folder holds vectors.bin."""
    if (folder / MODEL_FILE).is_file():
        return FmPredictor(load_fm(folder))
    if (folder / VECTORS_BIN).is_file():
        return BlazingTextModel.load(folder)
    raise FileNotFoundError(f"{folder}: neither {MODEL_FILE} (FM) nor {VECTORS_BIN} (BlazingText)")


@dataclass(frozen=True)
class Fault:
    status: int
    code: str
    message: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects
    server: _HttpServer
    timeout = 30

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm meets the client's
        # delayed ACK and every answer waits about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = _INVOCATIONS.fullmatch(self.path.split("?", 1)[0])
        if match is None:
            self._send(404, {"message": f"no such operation: POST {self.path}"}, "UnknownOperationException")
            return
        name = unquote(match.group(1))
        status, payload, code = self.server.owner.invoke(name, self.headers.get("Content-Type", ""), body)
        self._send(status, payload, code)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, {"endpoints": sorted(self.server.owner.endpoints())}, None)
        else:
            self._send(404, {"message": f"no such operation: GET {self.path}"}, "UnknownOperationException")

    def _send(self, status: int, payload: Any, error_code: str | None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_code is None:
            self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
        else:
            self.send_header("x-amzn-ErrorType", f"{error_code}:{_ERROR_NAMESPACE}")
        self.end_headers()
        self.wfile.write(data)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: RuntimeServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class RuntimeServer:
    """The SageMaker runtime on 127.0.0.1. Endpoints are names -> loaded models, swappable while running."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, account_id: str = "000000000000") -> None:
        self.host = host
        self.port = port
        self.account_id = account_id
        self._lock = threading.Lock()
        self._models: dict[str, Model] = {}
        self._faults: dict[str, collections.deque[Fault]] = collections.defaultdict(collections.deque)
        self._received: dict[str, collections.deque[Any]] = collections.defaultdict(
            lambda: collections.deque(maxlen=_RECEIVED_KEPT)
        )
        self._connections: set[socket.socket] = set()
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ endpoints and faults

    def add_endpoint(self, name: str, model: Path | str | FmParameters | Model) -> None:
        """Serve a model under a name (a folder is loaded first); an existing endpoint is swapped."""
        loaded: Model
        if isinstance(model, FmParameters):
            loaded = FmPredictor(model)
        elif isinstance(model, FmPredictor | BlazingTextModel):
            loaded = model
        else:
            loaded = load_model(Path(model))
        with self._lock:
            self._models[name] = loaded

    def remove_endpoint(self, name: str) -> None:
        with self._lock:
            self._models.pop(name, None)

    def endpoints(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def inject_faults(
        self, endpoint: str, status_code: int, count: int = 1, *, error_code: str | None = None
    ) -> None:
        """The next `count` invocations of `endpoint` fail with this HTTP status (and error code: by default
        the runtime's for that status, e.g. 429 ThrottlingException, 500 InternalFailure)."""
        code = error_code or ERROR_CODES.get(status_code)
        if code is None:
            raise ValueError(f"no default error code for status {status_code}: pass error_code")
        fault = Fault(status_code, code, f"injected fault: {code} ({status_code})")
        with self._lock:
            self._faults[endpoint].extend([fault] * count)

    def pending_faults(self, endpoint: str) -> int:
        """How many injected faults `endpoint` has yet to answer with."""
        with self._lock:
            return len(self._faults.get(endpoint, ()))

    def received(self, endpoint: str) -> list[Any]:
        """The JSON bodies of the last 100 invocations of `endpoint` that reached its model, oldest first."""
        with self._lock:
            return list(self._received[endpoint])

    def invoke(self, name: str, content_type: str, body: bytes) -> tuple[int, Any, str | None]:
        """One InvokeEndpoint: (HTTP status, JSON payload, error code or None)."""
        with self._lock:
            fault = self._faults[name].popleft() if self._faults.get(name) else None
            model = self._models.get(name)
        if fault is not None:
            return fault.status, {"message": fault.message}, fault.code
        if model is None:
            message = f"Endpoint {name} of account {self.account_id} not found."
            return 400, {"message": message}, "ValidationError"
        if content_type.split(";", maxsplit=1)[0].strip().lower() != "application/json":
            return self._model_error(name, 415, f"unsupported content type {content_type!r}")
        try:
            request = json.loads(body)
        except ValueError:
            return self._model_error(name, 400, "the body is not JSON")
        with self._lock:
            self._received[name].append(request)
        try:
            return 200, model.answer(request), None
        except ModelInputError as exc:
            return self._model_error(name, 400, str(exc))

    def _model_error(self, name: str, original_status: int, message: str) -> tuple[int, Any, str]:
        log_stream = f"arn:aws:logs:local:{self.account_id}:log-group:/aws/sagemaker/Endpoints/{name}"
        payload = {
            "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
            "LogStreamArn": log_stream,
            "Message": f'Received client error ({original_status}) from primary with message "{message}".',
            "OriginalMessage": message,
            "OriginalStatusCode": original_status,
        }
        return 424, payload, "ModelError"

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def start(self) -> RuntimeServer:
        """Listen (on the port of the previous start, if any: a restart keeps the URL) and serve."""
        if self._http is not None:
            raise RuntimeError(f"the runtime server is already running at {self.url}")
        self._http = _HttpServer((self.host, self.port), self)
        self.port = int(self._http.server_address[1])
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"runtime:{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections (clients see the server go away, as on a restart)."""
        http, thread = self._http, self._thread
        if http is None or thread is None:
            return
        http.shutdown()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        http.server_close()
        thread.join()
        self._http = self._thread = None

    def __enter__(self) -> RuntimeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m local.runtime_server",
        description="Serve local models over the SageMaker runtime API.",
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="an endpoint name and its model folder (model.tar.gz: FM, vectors.bin: BlazingText); repeatable",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = RuntimeServer(host=args.host, port=args.port)
    for spec in args.endpoint:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            parser.error(f"--endpoint {spec!r}: expected NAME=DIR")
        try:
            server.add_endpoint(name, Path(folder))
        except (OSError, ValueError) as exc:
            parser.error(f"--endpoint {spec!r}: {exc}")
    with server:
        print(f"SageMaker runtime at {server.url} serving {', '.join(server.endpoints()) or 'no endpoint'}")
        print(f"  SAGEMAKER_RUNTIME_ENDPOINT_URL={server.url}   (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
