"""Downloads from a local HTTP server serving small files in the real formats: checksums, resume, refusal."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from helpers import tiny_real, write_mnist_like

from yoco.data.datasets import load_dataset
from yoco.data.download import Remote, download
from yoco.errors import YocoError


class Server:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 with range requests; ``cut`` truncates the next response."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.cut, self.ranges = files, None, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if "Range" in self.headers:
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    outer.ranges.append(start)
                    self.send_response(206)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                data = body[start:]
                if outer.cut is not None:
                    data, outer.cut = data[: outer.cut], None
                    self.wfile.write(data)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def mnist_files(tmp_path):
    write_mnist_like(tmp_path / "src", tiny_real(n_per_class=5, num_classes=10, size=28))
    return {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def test_download_verifies_resumes_and_the_loader_reads_it(tmp_path, mnist_files):
    server = Server(mnist_files)
    try:
        table = {"mnist": tuple(Remote(server.url + n, md5(b)) for n, b in mnist_files.items())}
        big = max(mnist_files, key=lambda n: len(mnist_files[n]))
        table["mnist"] = tuple(sorted(table["mnist"], key=lambda r: r.name != big))  # the big file first
        server.cut = len(mnist_files[big]) // 2
        with pytest.raises(YocoError, match="interrupted after .* run the command again to resume"):
            download("mnist", tmp_path / "data", sources=table, progress=False)
        assert not (tmp_path / "data" / big).exists()  # only the .part file, never a half file under the real name
        folder = download("mnist", tmp_path / "data", sources=table, progress=False)
        assert server.ranges == [len(mnist_files[big]) // 2]  # resumed where it stopped
        assert {p.name for p in folder.iterdir()} == set(mnist_files)
        assert load_dataset("mnist", root=folder).train_images.shape == (50, 1, 28, 28)
        download("mnist", tmp_path / "data", sources=table, progress=False)  # present and verified: no request
        assert server.ranges == [len(mnist_files[big]) // 2]
    finally:
        server.close()


def test_wrong_checksum_is_refused_and_nothing_kept(tmp_path, mnist_files):
    server = Server(mnist_files)
    try:
        name = next(iter(mnist_files))
        table = {"mnist": (Remote(server.url + name, "0" * 32),)}
        with pytest.raises(YocoError, match="checksum mismatch"):
            download("mnist", tmp_path / "data", sources=table, progress=False)
        assert list((tmp_path / "data").iterdir()) == []
    finally:
        server.close()


def _cifar_archive(evil: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name: str, obj: object) -> None:
            data = pickle.dumps(obj)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        rng = np.random.default_rng(0)
        for b in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            add(f"cifar-10-batches-py/{b}", {b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8),
                                              b"labels": [i % 10 for i in range(20)]})
        add("cifar-10-batches-py/batches.meta", {b"label_names": [str(i).encode() for i in range(10)]})
        if evil:
            add("../escaped", {})
    return buf.getvalue()


def test_cifar_archive_unpacks_and_loads(tmp_path):
    archive = _cifar_archive()
    server = Server({"cifar-10-python.tar.gz": archive})
    try:
        table = {"cifar10": (Remote(server.url + "cifar-10-python.tar.gz", md5(archive), "cifar-10-batches-py"),)}
        folder = download("cifar10", tmp_path / "c", sources=table, progress=False)
        assert load_dataset("cifar10", root=folder).train_images.shape == (100, 3, 32, 32)
        assert not (folder / "cifar-10-python.tar.gz").exists()
    finally:
        server.close()


def test_archive_members_may_not_escape(tmp_path):
    archive = _cifar_archive(evil=True)
    server = Server({"cifar-10-python.tar.gz": archive})
    try:
        table = {"cifar10": (Remote(server.url + "cifar-10-python.tar.gz", md5(archive), "cifar-10-batches-py"),)}
        with pytest.raises(YocoError, match="outside the dataset folder"):
            download("cifar10", tmp_path / "c", sources=table, progress=False)
        assert not (tmp_path / "escaped").exists() and not (tmp_path / "c" / "cifar-10-batches-py").exists()
    finally:
        server.close()


def test_offline_is_a_clear_error(tmp_path):
    table = {"mnist": (Remote("http://127.0.0.1:9/none.gz", "0" * 32),)}
    with pytest.raises(YocoError, match="cannot connect .* are you offline"):
        download("mnist", tmp_path, sources=table, progress=False)
    with pytest.raises(YocoError, match="no download for 'imagenet10'"):
        download("imagenet10", tmp_path)


def test_download_command_is_wired(tmp_path, capsys):
    from yoco.cli import main

    with pytest.raises(SystemExit):
        main(["download", "--help"])
    assert "fashion-mnist" in capsys.readouterr().out
    assert Path(tmp_path).exists()
