# The two set-up commands of the README. Both install what they need first
# (tests/bootstrap.sh is idempotent).

.PHONY: cloud test lint bootstrap bench

bootstrap:
	bash tests/bootstrap.sh

# The all-in-one cloud on embedded defaults: SQLite in ./novum-data, embedded
# compute agents on libvirt's test driver, the standard plugin set.
cloud: bootstrap
	cargo run --release -p novum -- serve

# Formatting, lints and every test (unit, plugin semantics, WASM-vs-native
# property test, sandbox, API, end-to-end over HTTP with the real binaries).
test: bootstrap lint
	cargo test --workspace --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The scheduler benchmark: WASM pipeline vs native pipeline, side by side;
# then num-instances-filter alone as a Python component (built by bootstrap),
# a Rust component and native, side by side.
bench: bootstrap
	cargo run --release -p novum -- bench scheduler --hosts 100,1000,10000 \
	  --python-filter target/python-plugins/num-instances-filter.wasm
