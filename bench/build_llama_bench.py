"""Build a llama.cpp tool (`llama-bench` by default, or another target such as `llama-perplexity`) from
the sdist of the installed llama-cpp-python, and nothing else.

The reference must be the same llama.cpp, built the same way, as the library the pipeline's worker
calls: the sdist of the installed version, with its vendored llama.cpp, a Release build with ggml's
defaults (native CPU features, OpenMP, CPU repacking), as scikit-build-core builds the wheel. The
result is cached under bench/.cache/ (gitignored); a second call only prints the binary's path.

    .venv/bin/python bench/build_llama_bench.py                            # prints the path of llama-bench
    .venv/bin/python bench/build_llama_bench.py --target llama-perplexity  # the same build, one more tool

Every target is built in the same build folder (build-VERSION), so a second tool compiles only its own
sources; each is copied with the shared libraries into its own folder (TARGET-VERSION).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"


def installed_version() -> str:
    import llama_cpp

    return llama_cpp.__version__


def sdist(version: str) -> Path:
    """The extracted sdist of llama-cpp-python `version` (downloaded once with pip)."""
    root = CACHE / f"llama_cpp_python-{version}"
    if (root / "vendor" / "llama.cpp" / "tools" / "llama-bench").is_dir():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        print(f"downloading the llama-cpp-python {version} sdist", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "-d", tmp, f"llama-cpp-python=={version}"], check=True)
        archive = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(Path(tmp) / f"llama_cpp_python-{version}", root)  # whole or not at all
    return root


def build(version: str, target: str = "llama-bench") -> Path:
    """Configure and build the one `target` (a tool of llama.cpp's tools/); return the binary."""
    out = CACHE / f"{target}-{version}"
    binary = out / "bin" / target
    if binary.is_file():
        return binary
    src = sdist(version) / "vendor" / "llama.cpp"
    build_dir = CACHE / f"build-{version}"
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF",
             "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF"]
    log = CACHE / f"build-{version}.log"
    print(f"building {target} from {src} (several minutes on 2 cores; compiler output in {log})", file=sys.stderr)
    jobs = str(os.cpu_count() or 1)
    with open(log, "w") as compiler_log:
        for step in (["cmake", "-S", str(src), "-B", str(build_dir), *flags],
                     ["cmake", "--build", str(build_dir), "--target", target, "-j", jobs]):
            if subprocess.run(step, stdout=compiler_log, stderr=subprocess.STDOUT).returncode != 0:
                sys.exit(f"build_llama_bench: {' '.join(step[:2])} failed; see {log}")
    # Copy the binary and its shared libraries together, then rename: an interrupted build leaves no binary.
    staging = Path(tempfile.mkdtemp(dir=CACHE))
    (staging / "bin").mkdir()
    for lib in (build_dir / "bin").glob("*.so*"):
        shutil.copy2(lib, staging / "bin", follow_symlinks=False)
    shutil.copy2(build_dir / "bin" / target, staging / "bin")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    return binary


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="llama-bench", help="the CMake target (a tool of llama.cpp's tools/)")
    args = parser.parse_args()
    if shutil.which("cmake") is None:
        sys.exit("build_llama_bench: cmake is not installed; install it (apt install cmake) and run again")
    print(build(installed_version(), args.target))


if __name__ == "__main__":
    main()
