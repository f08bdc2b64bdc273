#!/usr/bin/env bash
# The GPU benchmark on a bare x86-64 machine (CUDA, CMake, ninja; no Node, no network), from the
# folder `npm run gpu:pack` wrote (.gpu-pack/, passed in `carry`). Steps, each timed:
#   unpack  Node, node_modules, llama.cpp source into the work folder
#   build   node-llama-cpp's own `source build` (cmake-js) for CUDA, sm_90 only (--cpu: for the CPU),
#           then llama.cpp's llama-batched-bench from the same build tree (the anchor)
#   models  the generated models (distilgpt2-sized Q8_0, ~1B llama F16; --cpu: stories260K + a tiny F16)
#   bench   llama-batched-bench and the ML Service over HTTP at 1, 16 and 64 sequences, GPU memory sampled
#   report  results.md / results.json in the output folder, the table printed last
# A step whose result is already in the work folder is skipped, so a rerun after a time-out resumes.
set -euo pipefail
# The whole script is one compound command, so bash parses it all before running: editing the file
# while it runs cannot change what runs.
{

usage() {
  cat <<'EOF'
usage: bench/gpu/device.sh [options]
  --cpu               build and run for the CPU (the local check); default: CUDA, sm_90
  --pack DIR          the packed folder (default: .gpu-pack)
  --work DIR          work folder, kept between runs (default: .gpu-work)
  --out DIR           working results folder (default: <work>/out, kept for resuming); when $OUT
                      is set, results.md, results.json, device.log and logs.tar.xz are copied there
  --jobs N            parallel compile jobs (default: all cores)
  --steps LIST        comma-separated subset of unpack,build,models,bench,report (default: all)
  --levels LIST       concurrent sequences (default: 1,16,64)
  --stories PATH      stories260K.gguf for --cpu (default: ../shared/models/stories260K.gguf)
  --deadline SECONDS  start no bench phase after this many seconds of the run (default: 540 for
                      CUDA, inside the device's 600 s per call; none for --cpu)
  --no-fa             build without FlashAttention kernels (GGML_CUDA_FA=OFF): a shorter CUDA
                      build; the service and llama-batched-bench then both run without FA
  --dry-run           print the plan and exit
  -h, --help          this text
EOF
}

MODE=cuda PACK=.gpu-pack WORK=.gpu-work OUTDIR="" EXPORT="${OUT:-}" JOBS="$(nproc)" STEPS=unpack,build,models,bench,report
LEVELS=1,16,64 STORIES=../shared/models/stories260K.gguf DEADLINE="" DRY=0 NO_FA=0
need() { [[ $# -ge 2 && -n "$2" ]] || { echo "device.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) MODE=cpu; shift ;;
    --pack) need "$@"; PACK="$2"; shift 2 ;;
    --work) need "$@"; WORK="$2"; shift 2 ;;
    --out) need "$@"; OUTDIR="$2"; shift 2 ;;
    --jobs) need "$@"; JOBS="$2"; shift 2 ;;
    --steps) need "$@"; STEPS="$2"; shift 2 ;;
    --levels) need "$@"; LEVELS="$2"; shift 2 ;;
    --stories) need "$@"; STORIES="$2"; shift 2 ;;
    --deadline) need "$@"; DEADLINE="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --no-fa) NO_FA=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "device.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "device.sh: --jobs must be a positive integer, got '$JOBS'" >&2; exit 2; }
[[ -n $DEADLINE ]] || { [[ $MODE == cuda ]] && DEADLINE=540 || DEADLINE=999999; }
[[ "$DEADLINE" =~ ^[1-9][0-9]*$ ]] || { echo "device.sh: --deadline must be a positive integer, got '$DEADLINE'" >&2; exit 2; }
[[ "$LEVELS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "device.sh: --levels must be like 1,16,64, got '$LEVELS'" >&2; exit 2; }
IFS=, read -r -a STEP_LIST <<<"$STEPS"
for s in "${STEP_LIST[@]}"; do
  [[ "$s" =~ ^(unpack|build|models|bench|report)$ ]] || { echo "device.sh: unknown step '$s' (unpack,build,models,bench,report)" >&2; exit 2; }
done
WORK="$(realpath -m "$WORK")"
OUTDIR="$(realpath -m "${OUTDIR:-$WORK/out}")"
APP="$WORK/app"
NLC="$APP/node_modules/node-llama-cpp"
MAX_LEVEL="$(tr , '\n' <<<"$LEVELS" | sort -n | tail -1)"
# The same custom CMake options at build and at run time: node-llama-cpp names the build folder after them.
if [[ $MODE == cuda ]]; then
  GPU_FLAG=cuda
  export NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_CUDA_ARCHITECTURES=90
  [[ $NO_FA == 0 ]] || export NODE_LLAMA_CPP_CMAKE_OPTION_GGML_CUDA_FA=OFF
  export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
else
  GPU_FLAG=false
fi
export PATH="$WORK/bin:$PATH" NLC_DIR="$NLC" NLC_JOBS="$JOBS" NODE_LLAMA_CPP_SKIP_DOWNLOAD=true

has_step() { [[ ",$STEPS," == *",$1,"* ]]; }
START=$SECONDS
log() {
  printf '[device %4ds] %s\n' "$((SECONDS - START))" "$*" | tee -a "$OUTDIR/device.log" >&2
  # Written as it goes: a run killed at its limit still returns its log.
  [[ -z $EXPORT ]] || cp "$OUTDIR/device.log" "$EXPORT/device.log" 2>/dev/null || true
}
# The device returns at most 8 files from $OUT: the report, the log, and one archive of everything.
export_results() {
  stop_gpu_sampler
  [[ -n $EXPORT && -d $EXPORT ]] || return 0
  for f in results.md results.json device.log; do [[ -f "$OUTDIR/$f" ]] && cp "$OUTDIR/$f" "$EXPORT/"; done
  tar -C "$OUTDIR" -cJf "$EXPORT/logs.tar.xz" . 2>/dev/null || true
}
timed() { # timed NAME cmd... : runs, appends "NAME seconds" to times.tsv
  local name="$1" t0=$SECONDS; shift
  "$@"
  printf '%s\t%s\n' "$name" "$((SECONDS - t0))" >>"$OUTDIR/times.tsv"
  log "$name: $((SECONDS - t0)) s"
}

if [[ $DRY == 1 ]]; then
  echo "mode=$MODE gpu=$GPU_FLAG pack=$PACK work=$WORK out=$OUTDIR export=${EXPORT:-none} jobs=$JOBS steps=$STEPS levels=$LEVELS deadline=$DEADLINE"
  [[ $MODE == cuda ]] && echo "cmake: GGML_CUDA=1 CMAKE_CUDA_ARCHITECTURES=$NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_CUDA_ARCHITECTURES GGML_CUDA_FA=${NODE_LLAMA_CPP_CMAKE_OPTION_GGML_CUDA_FA:-ON} CUDACXX=$CUDACXX"
  [[ $MODE == cpu ]] && echo "cmake: GGML_CUDA off (CPU build); stories=$STORIES"
  for s in "${STEP_LIST[@]}"; do echo "step: $s"; done
  exit 0
fi
mkdir -p "$WORK" "$OUTDIR"

# Re-extracts only the parts whose packed file changed; a new node_modules or llama.cpp drops the build.
stamp_of() { sha256sum "$@" | awk '{print $1}' | sha256sum | cut -c1-16; }
fresh() { [[ -f "$WORK/stamps/$1" && "$(cat "$WORK/stamps/$1")" == "$2" ]]; }
step_unpack() {
  [[ -f "$PACK/manifest.json" ]] || { log "no $PACK/manifest.json: run npm run gpu:pack here first, and carry $PACK"; exit 3; }
  mkdir -p "$WORK/stamps" "$WORK/bin" "$APP"
  local s_node s_src s_app
  s_node="$(stamp_of "$PACK/node.xz")"
  s_src="$(stamp_of "$PACK/modules.tar.xz" "$PACK/llama.cpp.tar.xz")"
  s_app="$(cd "$PACK/app" && find . -type f | sort | xargs sha256sum | sha256sum | cut -c1-16)"
  if ! fresh node "$s_node"; then
    xz -dc "$PACK/node.xz" >"$WORK/bin/node.tmp" && chmod +x "$WORK/bin/node.tmp" && mv "$WORK/bin/node.tmp" "$WORK/bin/node"
    echo "$s_node" >"$WORK/stamps/node"
  fi
  if ! fresh src "$s_src"; then
    rm -rf "$APP/node_modules"
    tar -C "$APP" -xJf "$PACK/modules.tar.xz"
    tar -C "$NLC/llama" -xJf "$PACK/llama.cpp.tar.xz"
    mkdir -p "$NLC/llama/llama.cpp/.git" # node-llama-cpp takes a llama.cpp folder with .git as "cloned"
    echo "$s_src" >"$WORK/stamps/src"
  fi
  if ! fresh app "$s_app"; then
    cp -r "$PACK/app/." "$APP/"
    echo "$s_app" >"$WORK/stamps/app"
  fi
  # node-llama-cpp's source build runs `npm run -s cmake-js-llama -- ARGS` (= `cd llama && cmake-js ARGS`).
  cat >"$WORK/bin/npm" <<'EOF'
#!/usr/bin/env bash
[[ "$1" == run && "$2" == -s && "$3" == cmake-js-llama && "$4" == -- ]] || { echo "npm shim: only 'run -s cmake-js-llama -- ...' is packed; got: $*" >&2; exit 1; }
shift 4
# Resuming a cut-off build: keep the build folder (node-llama-cpp's own removal is off, see pack.ts).
[[ "${NLC_RESUME:-}" == 1 && "$1" == clean ]] && exit 0
args=()
for a in "$@"; do [[ $a == --parallel=* ]] && a="--parallel=$NLC_JOBS"; args+=("$a"); done
cd "$NLC_DIR/llama" && exec node "$NLC_DIR/../cmake-js/bin/cmake-js" "${args[@]}"
EOF
  chmod +x "$WORK/bin/npm"
  log "unpacked: node $("$WORK/bin/node" --version), llama.cpp $(du -sh "$NLC/llama/llama.cpp" | cut -f1), node_modules $(du -sh "$APP/node_modules" | cut -f1)"
}

# CMake's FindCUDAToolkit needs cuBLAS and libcuda.so beside nvcc. Where the toolkit came as pip
# wheels (as on the machine this was prepared on: no cuBLAS, no stubs), cuBLAS may sit in python's
# nvidia/cublas and libcuda in the driver's folder: both are linked into one extra folder.
has_lib() { compgen -G "$1/lib*/$2.so*" >/dev/null || compgen -G "$1/lib*/stubs/$2.so" >/dev/null || compgen -G "$1/targets/*/lib/$2.so*" >/dev/null || compgen -G "$1/targets/*/lib/stubs/$2.so" >/dev/null; }
link_lib() { # link_lib FILE: FILE and its unversioned name into the extra lib folder
  ln -sf "$1" "$EXTRA/lib/"
  ln -sf "$1" "$EXTRA/lib/$(basename "$1" | sed 's/\.so\..*/.so/')"
}
cuda_env() {
  [[ $MODE == cuda ]] || return 0
  local home py_cublas f found=""
  home="$(dirname "$(dirname "$(readlink -f "$CUDACXX")")")"
  export CUDA_PATH="${CUDA_PATH:-$home}" CUDAToolkit_ROOT="${CUDAToolkit_ROOT:-$home}"
  EXTRA="$WORK/cuda-extra"
  mkdir -p "$EXTRA/include" "$EXTRA/lib"
  if [[ -f "$home/include/cublas_v2.h" ]] || compgen -G "$home/targets/*/include/cublas_v2.h" >/dev/null; then
    log "cuda: toolkit $home has cuBLAS"
  else
    py_cublas="$(python3 -c 'import nvidia.cublas as m; print(list(m.__path__)[0])' 2>/dev/null || true)"
    if [[ -n $py_cublas && -f "$py_cublas/include/cublas_v2.h" ]]; then
      ln -sf "$py_cublas"/include/* "$EXTRA/include/"
      for f in "$py_cublas"/lib/lib*.so*; do link_lib "$f"; done
      log "cuda: cuBLAS from $py_cublas"
    else
      log "cuda: WARNING no cuBLAS beside $CUDACXX nor in python's nvidia.cublas; the CUDA build will likely fail"
    fi
  fi
  if has_lib "$home" libcuda; then
    log "cuda: toolkit $home has libcuda"
  else
    for f in $(ldconfig -p 2>/dev/null | awk '/libcuda\.so/ {print $NF}') /usr/local/nvidia/lib64/libcuda.so* /usr/lib/x86_64-linux-gnu/libcuda.so*; do
      [[ -e $f ]] && { found="$f"; break; }
    done
    if [[ -n $found ]]; then link_lib "$found"; log "cuda: libcuda from $found"; else log "cuda: WARNING no libcuda.so found"; fi
  fi
  export CPATH="$EXTRA/include${CPATH:+:$CPATH}" CUDAFLAGS="-I$EXTRA/include ${CUDAFLAGS:-}" CMAKE_LIBRARY_PATH="$EXTRA/lib${CMAKE_LIBRARY_PATH:+:$CMAKE_LIBRARY_PATH}"
  export LIBRARY_PATH="$EXTRA/lib${LIBRARY_PATH:+:$LIBRARY_PATH}" LD_LIBRARY_PATH="$EXTRA/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if command -v nvidia-smi >/dev/null; then log "cuda: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"; fi
}

build_dir() { { find "$NLC/llama/localBuilds" -mindepth 1 -maxdepth 1 -type d -name "linux-x64*" 2>/dev/null || true; } | head -1; }
batched_bench_bin() {
  local d
  d="$(build_dir)"
  [[ -z $d ]] || { find "$d" -name llama-batched-bench -type f -perm -u+x 2>/dev/null || true; } | head -1
}

MODELS_PID=""
step_build() {
  local dir
  # The models are written by one Node thread while the compilers use the other cores.
  if has_step models && [[ ! -f "$WORK/models/models.json" ]]; then
    step_models >"$OUTDIR/models.log" 2>&1 &
    MODELS_PID=$!
    log "models: generating alongside the build (models.log)"
  fi
  dir="$(build_dir)"
  if [[ -n $dir && -f "$dir/buildDone.status" ]]; then
    log "build: node-llama-cpp already built in $dir"
  else
    if [[ -n $dir && -f "$dir/CMakeCache.txt" ]]; then
      export NLC_RESUME=1
      log "build: resuming the cut-off build in $dir"
    fi
    log "build: node-llama-cpp source build --gpu $GPU_FLAG with $JOBS jobs ($(command -v cmake) $(cmake --version | head -1 | cut -d' ' -f3))"
    [[ $MODE == cuda ]] && log "build: $("$CUDACXX" --version | tail -2 | head -1)"
    # Compiler output goes to the log only (thousands of warnings); its tail is printed on failure.
    (cd "$APP" && timed build_node_llama_cpp node "$NLC/dist/cli/cli.js" source build --gpu "$GPU_FLAG" --noUsageExample) >"$OUTDIR/build-node-llama-cpp.log" 2>&1 || true
    dir="$(build_dir)"
    [[ -n $dir && -f "$dir/buildDone.status" ]] || { log "build: node-llama-cpp build FAILED (see build-node-llama-cpp.log)"; tail -40 "$OUTDIR/build-node-llama-cpp.log" >&2; exit 4; }
  fi
  if [[ -z "$(batched_bench_bin)" ]]; then
    # Same build tree, same ggml objects: turn the tools on and build the one target.
    log "build: llama-batched-bench in $dir"
    timed build_batched_bench sh -c "cmake -S '$NLC/llama' -B '$dir' -DLLAMA_BUILD_TOOLS=ON >'$OUTDIR/build-batched-bench.log' 2>&1 && cmake --build '$dir' --config Release --target llama-batched-bench -j '$JOBS' >>'$OUTDIR/build-batched-bench.log' 2>&1" \
      || { log "build: llama-batched-bench FAILED"; tail -40 "$OUTDIR/build-batched-bench.log" >&2; exit 4; }
  fi
  log "build: $(batched_bench_bin)"
  if [[ -n $MODELS_PID ]]; then
    wait "$MODELS_PID" || { log "models: FAILED"; tail -20 "$OUTDIR/models.log" >&2; exit 6; }
    MODELS_PID=""
    log "models: written alongside the build: $(grep -c ' MB) in ' "$OUTDIR/models.log" || true) files (models.log)"
  fi
  find "$dir" -maxdepth 3 -name '*.so' -o -maxdepth 3 -name '*.node' | xargs ls -la 2>/dev/null | awk '{print $5, $9}' >"$OUTDIR/build-artifacts.txt" || true
}

step_models() {
  local set=gpu
  [[ ! -f "$WORK/models/models.json" ]] || { log "models: already written"; return 0; }
  [[ $MODE == cpu ]] && set=cpu
  timed models node "$APP/driver.mjs" models --dir "$WORK/models" --set "$set" --stories "$STORIES" --out "$WORK/models/models.json"
}

GPU_SAMPLER=""
start_gpu_sampler() {
  [[ $MODE == cuda ]] && command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$OUTDIR/gpu.txt" 2>&1 || true
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 200 >"$OUTDIR/gpu-mem.csv" 2>/dev/null &
  GPU_SAMPLER=$!
}
stop_gpu_sampler() { [[ -n $GPU_SAMPLER ]] && kill "$GPU_SAMPLER" 2>/dev/null || true; }
phase() { printf '%s\t%s\n' "$(date '+%Y/%m/%d %H:%M:%S.%3N')" "$1" >>"$OUTDIR/phases.tsv"; }

step_bench() {
  local bb ngl=99 threads=4 name path pp tg ctx rounds
  bb="$(batched_bench_bin)"
  [[ -n $bb ]] || { log "bench: no llama-batched-bench; run the build step"; exit 5; }
  [[ $MODE == cpu ]] && ngl=0 threads=2
  start_gpu_sampler
  phase idle
  sleep 1
  # The loop reads the model list on its stdin; every command inside reads /dev/null instead.
  while IFS=$'\t' read -r name path pp tg rounds; do
    if (( SECONDS - START > DEADLINE )); then log "bench: deadline ${DEADLINE}s reached before $name; rerun to continue"; break; fi
    ctx=$(( MAX_LEVEL * (pp + tg + 16) ))
    if [[ ! -s "$OUTDIR/batched-$name.jsonl" ]]; then
      phase "batched-bench $name"
      log "bench: llama-batched-bench $name (pp $pp, tg $tg, npl $LEVELS, ctx $ctx)"
      local t0=$SECONDS
      "$bb" -m "$path" -c "$ctx" -b 2048 -ub 512 -npp "$pp" -ntg "$tg" -npl "$LEVELS" -ngl "$ngl" -t "$threads" --output-format jsonl \
        </dev/null >"$OUTDIR/batched-$name.jsonl.tmp" 2>"$OUTDIR/batched-$name.log" || { log "bench: batched-bench $name FAILED"; tail -20 "$OUTDIR/batched-$name.log" >&2; }
      grep '^{' "$OUTDIR/batched-$name.jsonl.tmp" >"$OUTDIR/batched-$name.jsonl" || true
      rm -f "$OUTDIR/batched-$name.jsonl.tmp"
      printf '%s\t%s\n' "batched_$name" "$((SECONDS - t0))" >>"$OUTDIR/times.tsv"
    fi
    if (( SECONDS - START > DEADLINE )); then log "bench: deadline ${DEADLINE}s reached before the service on $name; rerun to continue"; break; fi
    if [[ ! -s "$OUTDIR/service-$name.json" ]]; then
      phase "service $name"
      log "bench: ML Service over HTTP, $name"
      node "$APP/driver.mjs" service --main "$APP/main.mjs" --model "$path" --name "$name" --gpu "$MODE" --levels "$LEVELS" \
        --max-tokens "$tg" --rounds "$rounds" --context "$(( pp + tg + 64 ))" --threads "$threads" --work "$WORK" --out "$OUTDIR/service-$name.json" \
        </dev/null 2>"$OUTDIR/service-$name.log" || { log "bench: service $name FAILED"; tail -20 "$OUTDIR/service-$name.log" >&2; }
    fi
  done < <(node "$APP/driver.mjs" list --models "$WORK/models/models.json")
  phase end
  stop_gpu_sampler
}

step_report() {
  node "$APP/driver.mjs" report --dir "$OUTDIR" --mode "$MODE" --manifest "$PACK/manifest.json"
}

trap export_results EXIT
set -E
trap 'log "FAILED (status $?) at line $LINENO: $BASH_COMMAND"' ERR
log "mode $MODE, work $WORK, out $OUTDIR, $JOBS jobs, steps $STEPS, $(nproc) cores, $(uname -m)"
cuda_env
for s in "${STEP_LIST[@]}"; do "step_$s"; done
log "done in $((SECONDS - START)) s"
exit 0
}
