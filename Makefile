# earshot — the two commands of the README:
#   make demo   build and caption the sample clip with the default model
#   make test   run every test (Python and Rust), installing what is missing
#   make bench  criterion benches of every stage + `earshot bench` on the test bundle
.PHONY: demo test build bench

SAMPLE ?= samples/woman-speaks.wav
DEFAULT_MODEL := models/default
TEST_MODEL := tests/golden/tiny-bundle

demo: build
	@if [ -f $(DEFAULT_MODEL)/manifest.json ]; then \
		./target/release/earshot caption $(SAMPLE); \
	else \
		echo "note: $(DEFAULT_MODEL)/ is not there yet; using the untrained test bundle (captions are nonsense)"; \
		./target/release/earshot caption --model $(TEST_MODEL) $(SAMPLE); \
	fi

build:
	@bash scripts/ensure-deps.sh build
	cargo build --release

test:
	bash scripts/test-all.sh

bench:
	cargo bench --bench pipeline
	cargo build --release
	./target/release/earshot bench --model $(TEST_MODEL) --windows 20
