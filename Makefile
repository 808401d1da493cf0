# `make demo`: build everything, fetch the models, serve the demo on http://localhost:8080
# `make test`: install what is missing, then run every test (Rust, then the browser tests)
.PHONY: setup build test test-rust test-browser demo bench

# wgpu's Vulkan loader complains on every start without it.
export XDG_RUNTIME_DIR ?= /tmp/confidant-xdg
$(shell mkdir -p -m 700 $(XDG_RUNTIME_DIR))

setup:
	scripts/setup.sh

build: setup
	cargo build --release -p confidant-cli
	scripts/build-web.sh

test: build test-rust test-browser

test-rust:
	cargo test --release

test-browser:
	cd tests && npm test

demo: build
	node web/serve.mjs --port 8080

bench: build
	target/release/confidant bench --model models/SmolLM2-135M-Instruct-Q4_1.gguf
