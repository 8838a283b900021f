#!/usr/bin/env bash
# Regenerates the committed protobuf code from Proto/ (Swift, Python).
# Needs protoc (Debian: protobuf-compiler). Builds swift-protobuf's
# protoc-gen-swift plugin once into .build-protoc (minutes) unless
# PROTOC_GEN_SWIFT points at one.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
plugin="${PROTOC_GEN_SWIFT:-}"
if [ -z "$plugin" ]; then
  swift build -c release --product protoc-gen-swift --scratch-path .build-protoc
  plugin="$(swift build -c release --scratch-path .build-protoc --show-bin-path)/protoc-gen-swift"
fi

# Every proto but the model IR belongs to the wire target; the IR belongs
# to PlinthInference, which has no network code.
inference=(plinth/v1/model.proto)
wire=()
for f in Proto/plinth/v1/*.proto; do
  rel=${f#Proto/}
  [ "$rel" = "${inference[0]}" ] || wire+=("$rel")
done

out=Sources/PlinthWire/Generated
rm -rf "$out" && mkdir -p "$out"
protoc -I Proto --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true --swift_out="$out" "${wire[@]}"

if [ -f Proto/plinth/v1/model.proto ]; then
  out=Sources/PlinthInference/Generated
  rm -rf "$out" && mkdir -p "$out"
  protoc -I Proto --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true --swift_out="$out" "${inference[@]}"
fi

py=Clients/python/plinth/_proto
mkdir -p "$py"
protoc -I Proto --python_out="$py" Proto/plinth/v1/*.proto
# protoc writes absolute-package imports (plinth.v1.x_pb2); the client keeps
# them under plinth._proto, so make them relative to that package.
find "$py" -name '*_pb2.py' -exec sed -i -E 's/^from plinth\.v1 import /from . import /' {} +
touch "$py/__init__.py" "$py/plinth/__init__.py" "$py/plinth/v1/__init__.py" 2>/dev/null || true
echo "generated: Swift in Sources/PlinthWire/Generated, Python in $py"
