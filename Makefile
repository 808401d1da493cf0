# `make demo`: build the wasm package and the site only, fetch the models, serve the demo on http://localhost:8080
# `make test`: install what is missing, then run every test (Rust, then the browser tests)
.PHONY: setup build build-web test test-rust test-browser demo bench

# wgpu's Vulkan loader complains on every start without it.
export XDG_RUNTIME_DIR ?= /tmp/confidant-xdg
$(shell mkdir -p -m 700 $(XDG_RUNTIME_DIR))

setup:
	scripts/setup.sh

# Every native target in one invocation, so the CLI, the tests and the examples share one
# feature resolution: building the CLI alone resolves features differently (no dev-dependencies)
# and `cargo test` would then compile burn's whole tree a second time.
build: setup
	cargo build --release --all-targets
	scripts/build-web.sh

test: build test-rust test-browser

test-rust:
	cargo test --release

test-browser:
	cd tests && npm test

# Only what the demo needs: the npm package (both wasm builds) and the site, no native targets.
demo:
	scripts/setup.sh demo
	scripts/build-web.sh
	node web/serve.mjs --port 8080

bench: build
	target/release/confidant bench --backend gpu --model models/SmolLM2-135M-Instruct-Q4_1.gguf
	target/release/confidant bench --backend cpu --model models/SmolLM2-135M-Instruct-Q4_1.gguf
	target/release/confidant bench --backend cpu --model models/gemma-3-270m-Q4_K_M.gguf
