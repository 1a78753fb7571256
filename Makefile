.PHONY: run test bench
run:
	./scripts/demo
test:
	./scripts/test
bench:
	./scripts/bench
